"""The public HTTP surface: routes, API keys, request ids, OpenAI-shaped errors, logs.

This is the edge: every failure of the layers below becomes an OpenAI error body with
the right status here, and nowhere else. Handlers read the `Coordinator` built by the
`run` command. `App` is the application that `coordinator.http_server.HttpServer`
asks twice about every request: `admit` when its head arrives (CORS preflight, key,
request id, route, method, body limit), then `__call__` to answer it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from coordinator.http_server import Admission, Request
from coordinator.ledger import query as usage_query
from coordinator.ledger.entry import TAIL_BYTES, Entry
from coordinator.ledger.store import LedgerUnreadable
from coordinator.ledger.store import report as usage_report
from coordinator.protocol import openai as wire
from coordinator.serving import dashboard, dialects, ids, lanes
from coordinator.serving.auth import OPEN, Grant, KeyRing, may_cancel
from coordinator.serving.cors import Cors
from coordinator.serving.fanout import FanOut
from coordinator.serving.lanes import Lane
from coordinator.serving.openapi import openapi
from coordinator.serving.pool import (
    PoolError,
    Waiter,
)
from coordinator.serving.proxy import ProxyError
from coordinator.serving.screenshots import Screenshots, ScreenshotUnavailable
from coordinator.serving.service import Service

if TYPE_CHECKING:
    from coordinator.serving.image_urls import ImageFetcher

log = structlog.get_logger("coordinator.serving.routes")

# Probes and scrapes: no API key, no request log line (they come every few seconds). And the
# dashboard's files, which hold no data: the page sends the admin key on its own requests.
_OPEN_PATHS = frozenset(
    {"/live", "/ready", "/health", "/metrics", "/openapi.json", dashboard.CONFIG, *dashboard.FILES}
)
_JSON = b"application/json"
_SSE_HEADERS = (
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # tells nginx in front not to buffer the stream
)
_CHAT = "/v1/chat/completions"
# The routes that run a chat request on the pool: chat completions and the adapters' (dialects.py).
_CHAT_PATHS = frozenset({_CHAT, *dialects.BY_PATH})
# OpenAI's routes that this server does not serve: a 404 that says what it serves instead.
_NOT_SERVED = frozenset({"/v1/embeddings", "/v1/completions"})
_SERVED = (
    "chat completions (POST /v1/chat/completions), responses (POST /v1/responses), "
    "messages (POST /v1/messages) and models (GET /v1/models)"
)
_NO_STORE = ((b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"))
# The body a route other than chat may send (none reads one); the chat route's is --max-body-bytes.
_SMALL_BODY = 64 * 1024


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
    # The answer's last bytes, where its usage is, for the ledger (never logged).
    tail: bytes = b""
    # The queue lane it waits in: X-Priority, else its key's default, else normal.
    lane: Lane = Lane.NORMAL


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    content_type: bytes = _JSON
    headers: tuple[tuple[bytes, bytes], ...] = ()
    error_code: str | None = None  # of an error reply, for the log line and metrics


Handler = Callable[[Request, Context, list[str]], Awaitable[Reply | None]]
_Route = tuple[Handler, list[str]]


class _Admitted(NamedTuple):
    """What `App.admit` decided from a request's head, read back when it is handled (a
    tuple, as `Admission` is: one per request)."""

    grant: Grant
    request_id: str | None  # the client's, or a new one; None where the id was refused
    route: _Route | Reply  # the handler and its parameters, or the refusal to send
    lane: Lane = Lane.NORMAL


def _refuse(grant: Grant, request_id: str | None, reply: Reply) -> Admission:
    return Admission(0, refused=True, decision=_Admitted(grant, request_id, reply))


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
    return Reply(status, error_body(status, code, message, param=param), headers=headers, error_code=code)


def _method_not_allowed(request: Request, allowed: tuple[str, ...]) -> Reply:
    return error_reply(
        405,
        "method_not_allowed",
        f"{request.method} is not allowed on {request.path}.",
        headers=((b"allow", ", ".join(allowed).encode()),),
    )


def error_body(status: int, code: str | None, message: str, *, param: str | None = None) -> bytes:
    """OpenAI's error object as bytes; also the server's own refusals (malformed HTTP...)."""
    return _dumps(wire.error_body(message, status=status, code=code, param=param))


def refusal_body(status: int, code: str, message: str, path: str) -> bytes:
    """The server's own refusals (a body too large, a head too slow...) in the shape of the
    API of the path asked, as the routes' errors are."""
    return dialects.dress_error(path, status, error_body(status, code, message))


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
        self.cors = Cors(coordinator.settings.cors_origins)
        self.max_body_bytes = coordinator.settings.max_body_bytes
        self.key_lanes = {label: Lane(lane) for label, lane in coordinator.settings.key_priorities}
        self.fanout = FanOut(coordinator.proxy, coordinator.pool)
        settings = coordinator.settings
        self.images: ImageFetcher | None = None
        if settings.fetch_image_urls:
            # Imported only then: it brings httpx, a twentieth of a second at every start.
            from coordinator.serving.image_urls import ImageFetcher

            self.images = ImageFetcher(
                max_bytes=settings.max_body_bytes, timeout=settings.fetch_image_timeout
            )
        get = ("GET", "HEAD")
        # path → methods → handler; the two paths with parameters are matched by prefix.
        self.routes: dict[str, tuple[tuple[str, ...], Handler]] = {
            _CHAT: (("POST",), self.chat_completions),
            **{path: (("POST",), self.adapted) for path in dialects.BY_PATH},
            "/v1/models": (get, self.models),
            "/live": (get, self.live),
            "/ready": (get, self.ready),
            "/health": (get, self.ready),
            "/metrics": (get, self.metrics_text),
            "/openapi.json": (get, self.openapi),
            "/admin/children": (get, self.admin_children),
            "/admin/usage": (get, self.admin_usage),
            "/admin/usage/quota": (get, self.admin_quota),
            **{path: (get, self.dashboard_file) for path in dashboard.FILES},
            dashboard.CONFIG: (get, self.dashboard_config),
        }
        self.prefixes: tuple[tuple[str, int, tuple[str, ...], Handler], ...] = (
            ("/v1/cancel/", 1, ("POST",), self.cancel),
            ("/v1/models/", 1, get, self.model),
            # POST restart or drain; GET screenshot (admin_action checks which goes with which).
            ("/admin/children/", 2, ("GET", "HEAD", "POST"), self.admin_action),
        )
        self.dashboard = dashboard.load()
        self.screenshots = Screenshots(coordinator.proxy.transport, coordinator.proxy.token)

    def admit(self, request: Request) -> Admission:
        """Preflight, key, request id, route and method, from the head alone: a request
        refused here is answered without its body ever being read, and one accepted may
        send only as much body as its route reads."""
        path = request.path
        headers = request.headers
        preflight = self.cors.preflight(request.method, headers)
        if preflight is not None:  # browsers send these without a key
            body = error_body(403, "cors_refused", preflight.refusal) if preflight.refusal else b""
            code = "cors_refused" if preflight.refusal else None
            reply = Reply(preflight.status, body, headers=preflight.headers, error_code=code)
            return _refuse(OPEN, None, reply)
        if path in _OPEN_PATHS:
            grant, request_id = OPEN, ""
        else:
            grant = self.keys.check(headers, path)
            if not grant.allowed:
                return _refuse(
                    grant, None, error_reply(grant.status, grant.code, grant.message, headers=grant.headers)
                )
            given = ids.request_id(headers)
            if given is None:
                return _refuse(grant, None, error_reply(400, "invalid_request_id", ids.INVALID))
            request_id = given
        route = self._resolve(request)
        if isinstance(route, Reply):
            return _refuse(grant, request_id, route)
        lane = Lane.NORMAL
        if path in _CHAT_PATHS:
            asked = lanes.of_request(headers, self.key_lanes.get(grant.owner or "", Lane.NORMAL))
            if asked is None:
                return _refuse(grant, request_id, error_reply(400, "invalid_priority", lanes.INVALID))
            lane = asked
        limit = self.max_body_bytes if path in _CHAT_PATHS else _SMALL_BODY
        return Admission(limit, decision=_Admitted(grant, request_id, route, lane))

    async def __call__(self, request: Request) -> None:
        admitted = cast(_Admitted, request.decision)
        path = request.path
        cors = self._cors(request)
        if path in _OPEN_PATHS and not isinstance(admitted.route, Reply):
            handler, params = admitted.route
            reply = await handler(request, Context(""), params)
            assert reply is not None
            await self._send(request, reply, cors)
            return
        request_id = admitted.request_id or ids.new_request_id()
        context = Context(request_id, grant=admitted.grant, lane=admitted.lane)
        stamped = path.startswith("/v1/")
        arrived = time.time()
        started = time.perf_counter()
        try:
            if isinstance(admitted.route, Reply):
                reply = admitted.route
                context.error_code = reply.error_code
            else:
                if path in _CHAT_PATHS:
                    # The first request of an id owns it; a second one is refused as a duplicate.
                    self.running.setdefault(context.request_id, context)
                handler, params = admitted.route
                reply = await handler(request, context, params)
            if reply is not None:
                await self._send(request, reply, (*self._stamp(context), *cors) if stamped else cors)
        except Exception as exc:
            log.error("internal_error", path=path, error=repr(exc))
            if not request.started:
                reply = error_reply(
                    500,
                    "internal_error",
                    "The coordinator failed on this request; the error is logged. Retry the request.",
                )
                await self._send(request, reply, (*self._stamp(context), *cors) if stamped else cors)
        finally:
            self._record(request, context, started, arrived)

    def _resolve(self, request: Request) -> _Route | Reply:
        """The handler of a request and its path parameters, or the 404 or 405 it gets."""
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
        if route is None and path.rstrip("/") in _NOT_SERVED:
            return error_reply(
                404, "unsupported_endpoint", f"This server does not serve {path}: it serves {_SERVED}."
            )
        if route is None:
            return error_reply(
                404, "not_found", f"No route {path}; see GET /v1/models, POST /v1/chat/completions."
            )
        methods, handler = route
        if request.method not in methods:
            return _method_not_allowed(request, methods)
        return handler, params

    @staticmethod
    async def _send(request: Request, reply: Reply, stamp: tuple[tuple[bytes, bytes], ...]) -> None:
        body = reply.body
        if reply.status >= 400 and reply.content_type == _JSON:
            body = dialects.dress_error(request.path, reply.status, body)  # Anthropic's shape on its route
        await request.respond(
            reply.status, ((b"content-type", reply.content_type), *reply.headers, *stamp), body
        )

    @staticmethod
    def _stamp(context: Context) -> tuple[tuple[bytes, bytes], ...]:
        return (
            (b"x-request-id", context.request_id.encode()),
            (b"x-coordinator-child", (context.child or "-").encode()),
        )

    def _record(self, request: Request, context: Context, started: float, arrived: float) -> None:
        """Every request's log line, and its metrics; nothing here may keep the line from being written."""
        seconds = time.perf_counter() - started
        status = request.status if request.finished else 499
        path = request.path
        try:
            if self.running.get(context.request_id) is context:
                del self.running[context.request_id]
            if path in _CHAT_PATHS:
                model = context.model or self._default_model(context.child)
                first_byte = request.first_byte_at
                self.metrics.request_done(
                    status,
                    context.model,
                    bool(context.stream),
                    seconds,
                    None if first_byte is None else first_byte - started,
                    context.error_code,
                )
                self.coordinator.ledger.record(
                    Entry(
                        arrived, context.request_id, path, context.child, model, status,
                        context.error_code, bool(context.stream), None if first_byte is None
                        else first_byte - started, seconds, context.grant.owner, context.tail[-TAIL_BYTES:],
                    )
                )  # fmt: skip
                if context.child is not None and model is not None:
                    for profile in context.child.split(","):  # n > 1: a request of each child
                        self.coordinator.quota.request(profile, model, arrived)
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
                cancelled_by=request.cancelled_by,
            )

    def _default_model(self, child_id: str | None) -> str | None:
        """The model a child served a request that named none (n > 1: the first child's)."""
        child = self.coordinator.roster.get(child_id.partition(",")[0]) if child_id else None
        return child.model_for(None) if child is not None else None

    def _cors(self, request: Request) -> tuple[tuple[bytes, bytes], ...]:
        """The CORS headers of an answer to a page of an allowed origin (a preflight's
        answer has its own)."""
        if not self.cors.enabled or request.method == "OPTIONS":
            return ()
        return self.cors.headers(request.headers.get("origin"))

    # -- POST /v1/chat/completions, the hot path ----------------------------------------

    async def chat_completions(self, request: Request, context: Context, params: list[str]) -> Reply | None:
        """Queue, forward, and answer: whole, or as a stream relayed chunk by chunk.

        A client that disconnects has this cancelled by the server, wherever it is: in the
        queue, waiting for the first byte, or in the relay, so it frees its slot or child.
        """
        proxy = self.coordinator.proxy
        try:
            body = await self._fetch_images(request.body)
            chat = self._prepare(body, context)
            if chat.n > 1:
                return await self._choices(request, context, chat)
            answer = await proxy.open(chat, body, context.request_id, context.lane)
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
            return error_reply(
                exc.status, exc.code, exc.message, param=exc.param, retry_after=exc.retry_after
            )
        context.child = answer.child.id
        if answer.stream is None:
            context.tail = answer.body
            content_type = (answer.content_type or "application/json").encode()
            return Reply(answer.status, answer.body, content_type, answer.headers)
        async with contextlib.aclosing(proxy.relay(answer, context.request_id)) as relay:
            request.start(200, (*_SSE_HEADERS, *answer.headers, *self._stamp(context), *self._cors(request)))
            async for chunk in relay:
                context.tail = chunk
                await request.write(wire.without_usage_note(chunk))
            await request.end()
        return None

    async def _choices(self, request: Request, context: Context, chat: wire.ChatRequest) -> Reply | None:
        """n > 1: the answers of n children, merged (`coordinator.serving.fanout`)."""
        fanout = self.fanout
        try:
            fanout.check(chat)
            if not chat.stream:
                body, children = await fanout.complete(chat, context.request_id, context.lane)
                context.child = ",".join(children)
                context.tail = body
                return Reply(200, body)
            merged = await fanout.stream(chat, context.request_id, context.lane)
        except wire.OpenAIError as exc:
            context.error_code = exc.code
            return error_reply(
                exc.status, exc.code, exc.message, param=exc.param, retry_after=exc.retry_after
            )
        try:
            context.child = ",".join(merged.children)
            request.start(200, (*_SSE_HEADERS, *self._stamp(context), *self._cors(request)))
            async with contextlib.aclosing(merged.chunks()) as chunks:
                async for chunk in chunks:
                    context.tail = chunk
                    await request.write(wire.without_usage_note(chunk))
            await request.end()
        finally:
            await merged.aclose()
            context.child = ",".join(merged.children)
        return None

    async def _fetch_images(self, body: bytes) -> bytes:
        """With --fetch-image-urls, the body with its web images as data: URLs
        (`coordinator.serving.image_urls`); else the body as it came."""
        if self.images is None or self.coordinator.draining:
            return body
        try:
            return await self.images.inline(body)
        except wire.InvalidRequest as exc:
            raise Refusal(400, exc.code, exc.message, param=exc.param) from None

    def _prepare(self, body: bytes, context: Context) -> wire.ChatRequest:
        """The parsed request, or a Refusal that says why it cannot be served."""
        coordinator = self.coordinator
        if coordinator.draining:
            raise Refusal(
                503, "shutting_down", "The coordinator is shutting down; retry shortly.", retry_after=5
            )
        try:
            chat = wire.parse_chat_request(body, fan_out=True)
        except wire.InvalidRequest as exc:
            raise Refusal(400, exc.code, exc.message, param=exc.param) from None
        running = coordinator.pool.locate(context.request_id) or context.request_id in self.fanout.running
        if running:
            raise Refusal(
                400,
                "duplicate_request_id",
                f"A request with X-Request-ID {context.request_id!r} is already in progress; "
                "send a unique id or none.",
            )
        context.model = chat.model
        context.stream = chat.stream
        return chat

    # -- POST /v1/responses, POST /v1/messages: other APIs on the same path ---------------

    async def adapted(self, request: Request, context: Context, params: list[str]) -> Reply | None:
        """Translate to a chat request, run it as `chat_completions` does, and answer in the
        route's own API: a whole object, or a stream re-encoded piece by piece as it comes."""
        dialect = dialects.BY_PATH[request.path]
        proxy = self.coordinator.proxy
        try:
            plan = dialect.plan(request.body, context.request_id, time.time())
            body = await self._fetch_images(plan.chat)
            chat = self._prepare(body, context)
            answer = await proxy.open(chat, body, context.request_id, context.lane)
        except wire.InvalidRequest as exc:
            context.error_code = exc.code
            return error_reply(exc.status, exc.code, exc.message, param=exc.param)
        except (Refusal, ProxyError, PoolError) as exc:
            context.error_code = exc.code
            return error_reply(
                exc.status, exc.code, exc.message, param=exc.param, retry_after=exc.retry_after
            )
        context.child = answer.child.id
        if answer.stream is None:
            context.tail = answer.body
            return self._adapted_whole(plan, answer.status, answer.body, context)
        encoder = plan.encoder()
        async with contextlib.aclosing(proxy.relay(answer, context.request_id)) as relay:
            request.start(200, (*_SSE_HEADERS, *self._stamp(context), *self._cors(request)))
            await request.write(encoder.start())
            async for chunk in relay:
                context.tail = chunk
                await request.write(encoder.feed(chunk))
            await request.write(encoder.close())
            await request.end()
        return None

    @staticmethod
    def _adapted_whole(plan: dialects.Plan, status: int, body: bytes, context: Context) -> Reply:
        if status != 200:  # the child's own refusal, in OpenAI's shape: `_send` dresses it
            context.error_code = dialects.error_code(body)
            return Reply(status, body, error_code=context.error_code)
        try:
            completion = json.loads(body)
            return json_reply(plan.whole(completion))
        except (ValueError, TypeError, AttributeError) as exc:
            context.error_code = "child_failed"
            return error_reply(502, "child_failed", f"The child's answer could not be translated: {exc}.")

    # -- the other routes ---------------------------------------------------------------

    async def cancel(self, request: Request, context: Context, params: list[str]) -> Reply:
        coordinator = self.coordinator
        (request_id,) = params
        running = self.running.get(request_id)
        if (
            request_id in self.fanout.running
            and running is not None
            and may_cancel(context.grant, running.grant.owner)
        ):
            children = await self.fanout.cancel(request_id)
            context.child = ",".join(children) or None
            return json_reply({"id": request_id, "cancelled": True, "where": "choices", "children": children})
        holder = coordinator.pool.locate(request_id)
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
        data = [self._model(model) for model in self.coordinator.pool.models()]
        return json_reply({"object": "list", "data": data})

    async def model(self, request: Request, context: Context, params: list[str]) -> Reply:
        (model,) = params
        model = urllib.parse.unquote(model).removeprefix("models/")  # as the page spells it
        offered = self.coordinator.pool.models()
        if model not in offered:
            return error_reply(
                404,
                "model_not_found",
                f"The model {model!r} is not offered by any child; available models: "
                f"{', '.join(sorted(offered)) or 'none'} (GET /v1/models).",
                param="model",
            )
        return json_reply(self._model(model))

    def _model(self, model: str) -> dict[str, Any]:
        """OpenAI's Model object for a model some child offers."""
        return {
            "id": model,
            "object": "model",
            "created": int(self.coordinator.started_at),
            "owned_by": "coordinator",
        }

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
        data = [child.snapshot() for child in children]
        return json_reply({"object": "list", "data": data, "shard": self.coordinator.shard()})

    async def admin_usage(self, request: Request, context: Context, params: list[str]) -> Reply:
        """The ledger's report (`coordinator.ledger.store.report`), read on a thread of its own."""
        try:
            question = usage_query.parse(request.query)
        except usage_query.QueryError as exc:
            return error_reply(400, "invalid_query", exc.message, param=exc.param)
        try:
            found = await asyncio.to_thread(
                usage_report, self.coordinator.ledger.path, question.group_by, question.start, question.end
            )
        except LedgerUnreadable as exc:
            return error_reply(503, "ledger_unavailable", f"{exc}; see the coordinator's log.")
        return json_reply(found.as_json())

    async def admin_quota(self, request: Request, context: Context, params: list[str]) -> Reply:
        """The quota view (`coordinator.ledger.quota`): each profile's use of each model today,
        Pacific time; every model a child offers is listed, at zero until used."""
        known = [(child.id, model) for child in self.coordinator.roster for model in child.models]
        return json_reply(self.coordinator.quota.view(known))

    async def admin_action(self, request: Request, context: Context, params: list[str]) -> Reply:
        supervisor = self.coordinator.supervisor
        child_id, action = params
        child = self.coordinator.roster.get(child_id)
        if child is None:
            known = ", ".join(self.coordinator.roster.ids()) or "none"
            return error_reply(404, "child_not_found", f"No child {child_id!r}; children: {known}.")
        if action not in ("restart", "drain", "screenshot"):
            return error_reply(
                404, "unknown_action", f"Unknown action {action!r}; use restart, drain or screenshot."
            )
        wanted = ("GET", "HEAD") if action == "screenshot" else ("POST",)
        if request.method not in wanted:
            return _method_not_allowed(request, wanted)
        if action == "screenshot":
            try:
                png = await self.screenshots.get(child)
            except ScreenshotUnavailable as exc:
                return error_reply(503, "screenshot_unavailable", exc.message, retry_after=3)
            return Reply(200, png, b"image/png", _NO_STORE)
        if action == "restart":
            supervisor.restart(child)
        else:
            supervisor.drain(child)
        return json_reply({"id": child.id, "action": action, "state": child.state.value}, 202)

    # -- GET /dashboard: the page and its files (coordinator.serving.dashboard) ------------

    async def dashboard_file(self, request: Request, context: Context, params: list[str]) -> Reply:
        asset = self.dashboard[request.path]
        return Reply(200, asset.body, asset.content_type, dashboard.HEADERS)

    async def dashboard_config(self, request: Request, context: Context, params: list[str]) -> Reply:
        """What the page must know before it asks /admin: whether a key is needed."""
        config = {"key_required": self.keys.enabled}
        return Reply(200, _dumps(config), _JSON, dashboard.HEADERS)
