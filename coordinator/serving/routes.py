"""The public HTTP surface: routes, API keys, request ids, OpenAI-shaped errors, logs.

This is the edge: every failure of the layers below becomes an OpenAI error body with
the right status here, and nowhere else. Handlers read the `Coordinator` built by the
`run` command; nothing here holds state of its own. `App` is the handler that
`coordinator.serving.http.HttpServer` calls with every request.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from coordinator.protocol import openai as wire
from coordinator.serving import ids
from coordinator.serving.auth import OPEN, Grant, KeyRing, may_cancel
from coordinator.serving.http import Request
from coordinator.serving.openapi import openapi
from coordinator.serving.pool import (
    PoolError,
    Waiter,
)
from coordinator.serving.proxy import ProxyError
from coordinator.serving.service import Service

log = structlog.get_logger("coordinator.serving.routes")

# Probes and scrapes: no API key, no request log line (they come every few seconds).
_OPEN_PATHS = frozenset({"/live", "/ready", "/health", "/metrics", "/openapi.json"})
_JSON = b"application/json"
_SSE_HEADERS = (
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # tells nginx in front not to buffer the stream
)
_CHAT = "/v1/chat/completions"


@dataclass(slots=True)
class Context:
    """What the edge learns about one request, for its headers, its log line and metrics."""

    request_id: str
    child: str | None = None
    model: str | None = None
    stream: bool | None = None
    error_code: str | None = None
    # The key that let the request in (its label, never the key), which alone may cancel it.
    grant: Grant = OPEN


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    content_type: bytes = _JSON
    headers: tuple[tuple[bytes, bytes], ...] = ()


Handler = Callable[[Request, Context, list[str]], Awaitable[Reply | None]]


def json_reply(content: Any, status: int = 200) -> Reply:
    return Reply(status, _dumps(content))


def error_reply(
    status: int,
    code: str | None,
    message: str,
    *,
    param: str | None = None,
    retry_after: int | None = None,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> Reply:
    if retry_after is not None:
        headers = (*headers, (b"retry-after", str(retry_after).encode()))
    return Reply(status, error_body(status, code, message, param=param), headers=headers)


def error_body(status: int, code: str | None, message: str, *, param: str | None = None) -> bytes:
    """OpenAI's error object as bytes; also the server's own refusals (malformed HTTP...)."""
    return _dumps(wire.error_body(message, status=status, code=code, param=param))


def _dumps(content: Any) -> bytes:
    return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


class Refusal(wire.OpenAIError):
    """A chat request refused at the edge, before any child is involved."""


class App:
    """Routes a request, checks its API key, and gives it an id, a log line and metrics."""

    def __init__(self, coordinator: Service) -> None:
        self.coordinator = coordinator
        self.metrics = coordinator.metrics
        self.keys = KeyRing.from_settings(coordinator.settings)
        # Chat requests in progress by id, for cancel to learn whose each is.
        self.running: dict[str, Context] = {}
        get = ("GET", "HEAD")
        # path → methods → handler; the two paths with parameters are matched by prefix.
        self.routes: dict[str, tuple[tuple[str, ...], Handler]] = {
            _CHAT: (("POST",), self.chat_completions),
            "/v1/models": (get, self.models),
            "/live": (get, self.live),
            "/ready": (get, self.ready),
            "/health": (get, self.ready),
            "/metrics": (get, self.metrics_text),
            "/openapi.json": (get, self.openapi),
            "/admin/children": (get, self.admin_children),
        }
        self.prefixes: tuple[tuple[str, int, tuple[str, ...], Handler], ...] = (
            ("/v1/cancel/", 1, ("POST",), self.cancel),
            ("/admin/children/", 2, ("POST",), self.admin_action),
        )

    async def __call__(self, request: Request) -> None:
        path = request.path
        if path in _OPEN_PATHS:
            reply = await self._route(request, Context(""))
            assert reply is not None
            await self._send(request, reply, ())
            return
        given_id = self._request_id(request.headers)
        context = Context(given_id or ids.new_request_id())
        stamp = path.startswith("/v1/")
        started = time.perf_counter()
        try:
            context.grant = grant = self._authorized(request.headers, path)
            if not grant.allowed:
                context.error_code = grant.code
                reply = error_reply(grant.status, grant.code, grant.message, headers=grant.headers)
            elif given_id is None:
                context.error_code = "invalid_request_id"
                reply = error_reply(400, "invalid_request_id", ids.INVALID)
            else:
                if path == _CHAT:
                    # The first request of an id owns it; a second one is refused as a duplicate.
                    self.running.setdefault(context.request_id, context)
                reply = await self._route(request, context)
            if reply is not None:
                await self._send(request, reply, self._stamp(context) if stamp else ())
        except Exception as exc:
            log.error("internal_error", path=path, error=repr(exc))
            if not request.started:
                reply = error_reply(
                    500,
                    "internal_error",
                    "The coordinator failed on this request; the error is logged. Retry the request.",
                )
                await self._send(request, reply, self._stamp(context) if stamp else ())
        finally:
            self._record(request, context, started)

    async def _route(self, request: Request, context: Context) -> Reply | None:
        path = request.path
        route = self.routes.get(path)
        params: list[str] = []
        if route is None:
            for prefix, count, methods, handler in self.prefixes:
                if path.startswith(prefix):
                    params = path[len(prefix) :].split("/")
                    if len(params) == count and all(params):
                        route = (methods, handler)
                    break
        if route is None:
            return error_reply(
                404, "not_found", f"No route {path}; see GET /v1/models, POST /v1/chat/completions."
            )
        methods, handler = route
        if request.method not in methods:
            return error_reply(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed on {path}.",
                headers=((b"allow", ", ".join(methods).encode()),),
            )
        return await handler(request, context, params)

    @staticmethod
    async def _send(request: Request, reply: Reply, stamp: tuple[tuple[bytes, bytes], ...]) -> None:
        await request.respond(
            reply.status, ((b"content-type", reply.content_type), *reply.headers, *stamp), reply.body
        )

    @staticmethod
    def _stamp(context: Context) -> tuple[tuple[bytes, bytes], ...]:
        return (
            (b"x-request-id", context.request_id.encode()),
            (b"x-coordinator-child", (context.child or "-").encode()),
        )

    def _record(self, request: Request, context: Context, started: float) -> None:
        """Every request's log line, and its metrics; nothing here may keep the line from being written."""
        seconds = time.perf_counter() - started
        status = request.status if request.finished else 499
        path = request.path
        try:
            if self.running.get(context.request_id) is context:
                del self.running[context.request_id]
            if path == _CHAT:
                first_byte = request.first_byte_at
                self.metrics.request_done(
                    status,
                    context.model,
                    bool(context.stream),
                    seconds,
                    None if first_byte is None else first_byte - started,
                    context.error_code,
                )
        finally:
            log.info(
                "request",
                request_id=context.request_id,
                method=request.method,
                path=path,
                status=status,
                child=context.child,
                profile=context.child,
                model=context.model,
                stream=context.stream,
                key=context.grant.owner,
                duration_ms=round(seconds * 1000, 2),
            )

    @staticmethod
    def _request_id(headers: dict[str, str]) -> str | None:
        """The client's X-Request-ID, a new unguessable id if it sent none, None if its id is unusable."""
        return ids.request_id(headers)

    def _authorized(self, headers: dict[str, str], path: str) -> Grant:
        """Whether the request's key may reach `path` (401, 403 or in), and whose key it is."""
        return self.keys.check(headers, path)

    # -- POST /v1/chat/completions, the hot path ----------------------------------------

    async def chat_completions(self, request: Request, context: Context, params: list[str]) -> Reply | None:
        """Queue, forward, and answer: whole, or as a stream relayed chunk by chunk.

        A client that disconnects has this cancelled by the server, wherever it is: in the
        queue, waiting for the first byte, or in the relay, so it frees its slot or child.
        """
        proxy = self.coordinator.proxy
        try:
            chat = self._prepare(request, context)
            answer = await proxy.open(chat, request.body, context.request_id)
        except Refusal as exc:
            context.error_code = exc.code
            return error_reply(
                exc.status, exc.code, exc.message, param=exc.param, retry_after=exc.retry_after
            )
        except ProxyError as exc:
            context.error_code = exc.code
            return error_reply(exc.status, exc.code, exc.message, retry_after=exc.retry_after)
        except PoolError as exc:
            context.error_code = exc.code
            return error_reply(exc.status, exc.code, exc.message, retry_after=exc.retry_after)
        context.child = answer.child.id
        if answer.stream is None:
            return Reply(answer.status, answer.body, (answer.content_type or "application/json").encode())
        async with contextlib.aclosing(proxy.relay(answer, context.request_id)) as relay:
            request.start(200, (*_SSE_HEADERS, *self._stamp(context)))
            async for chunk in relay:
                await request.write(chunk)
            await request.end()
        return None

    def _prepare(self, request: Request, context: Context) -> wire.ChatRequest:
        """The parsed request, or a Refusal that says why it cannot be served."""
        coordinator = self.coordinator
        if coordinator.draining:
            raise Refusal(
                503, "shutting_down", "The coordinator is shutting down; retry shortly.", retry_after=5
            )
        try:
            chat = wire.parse_chat_request(request.body)
        except wire.InvalidRequest as exc:
            raise Refusal(400, exc.code, exc.message, param=exc.param) from None
        if coordinator.pool.locate(context.request_id) is not None:
            raise Refusal(
                400,
                "duplicate_request_id",
                f"A request with X-Request-ID {context.request_id!r} is already in progress; "
                "send a unique id or none.",
            )
        context.model = chat.model
        context.stream = chat.stream
        return chat

    # -- the other routes ---------------------------------------------------------------

    async def cancel(self, request: Request, context: Context, params: list[str]) -> Reply:
        coordinator = self.coordinator
        (request_id,) = params
        holder = coordinator.pool.locate(request_id)
        running = self.running.get(request_id)
        # Another key's request is answered as one that does not exist: ids cannot be probed.
        if holder is None or running is None or not may_cancel(context.grant, running.grant.owner):
            return error_reply(
                404,
                "request_not_found",
                f"No request {request_id!r} is waiting or running; it may have finished already.",
            )
        if isinstance(holder, Waiter):
            coordinator.pool.cancel_waiting(holder)
            return json_reply({"id": request_id, "cancelled": True, "where": "queue"})
        context.child = holder.id
        if not await coordinator.proxy.cancel_on(holder, request_id):
            return error_reply(
                404, "request_not_found", f"Request {request_id!r} finished before it could be cancelled."
            )
        return json_reply({"id": request_id, "cancelled": True, "where": "child", "child": holder.id})

    async def models(self, request: Request, context: Context, params: list[str]) -> Reply:
        created = int(self.coordinator.started_at)
        data = [
            {"id": model, "object": "model", "created": created, "owned_by": "coordinator"}
            for model in self.coordinator.pool.models()
        ]
        return json_reply({"object": "list", "data": data})

    async def metrics_text(self, request: Request, context: Context, params: list[str]) -> Reply:
        return Reply(200, self.metrics.render(), CONTENT_TYPE_LATEST.encode())

    async def openapi(self, request: Request, context: Context, params: list[str]) -> Reply:
        return json_reply(openapi())

    async def live(self, request: Request, context: Context, params: list[str]) -> Reply:
        return json_reply({"status": "live"})

    async def ready(self, request: Request, context: Context, params: list[str]) -> Reply:
        summary = self.coordinator.summary()
        return json_reply(summary, 200 if summary["status"] == "ready" else 503)

    async def admin_children(self, request: Request, context: Context, params: list[str]) -> Reply:
        children = self.coordinator.roster
        return json_reply({"object": "list", "data": [child.snapshot() for child in children]})

    async def admin_action(self, request: Request, context: Context, params: list[str]) -> Reply:
        supervisor = self.coordinator.supervisor
        child_id, action = params
        child = self.coordinator.roster.get(child_id)
        if child is None:
            known = ", ".join(self.coordinator.roster.ids()) or "none"
            return error_reply(404, "child_not_found", f"No child {child_id!r}; children: {known}.")
        if action == "restart":
            supervisor.restart(child)
        elif action == "drain":
            supervisor.drain(child)
        else:
            return error_reply(404, "unknown_action", f"Unknown action {action!r}; use restart or drain.")
        return json_reply({"id": child.id, "action": action, "state": child.state.value}, 202)
