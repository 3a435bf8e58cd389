"""The public HTTP surface: Starlette routes, OpenAI-shaped errors, request ids and logs.

This is the edge: every failure of the layers below becomes an OpenAI error body with
the right status here, and nowhere else. Routes read the `Coordinator` built by the
`run` command from `app.state`; nothing here holds state of its own.
"""

from __future__ import annotations

import contextlib
import hmac
import time
import uuid
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coordinator import wire
from coordinator.metrics import Metrics
from coordinator.openapi import openapi
from coordinator.pool import (
    AllCoolingDown,
    NoChildAvailable,
    PoolClosed,
    PoolError,
    QueueFull,
    QueueTimeout,
    UnknownModel,
    Waiter,
)
from coordinator.proxy import ClientDisconnected, ProxyError, cancelled_on_disconnect

if TYPE_CHECKING:
    from coordinator.server import Coordinator

log = structlog.get_logger("coordinator.http")

# Pool errors at the edge: status and OpenAI error code.
_POOL_ERRORS: dict[type[PoolError], tuple[int, str]] = {
    QueueFull: (429, "queue_full"),
    QueueTimeout: (503, "queue_timeout"),
    UnknownModel: (404, "model_not_found"),
    PoolClosed: (503, "shutting_down"),
    AllCoolingDown: (429, "quota_exhausted"),
    NoChildAvailable: (503, "no_child_available"),
}
# Probes and scrapes: no API key, no request log line (they come every few seconds).
_OPEN_PATHS = frozenset({"/live", "/ready", "/health", "/metrics", "/openapi.json"})
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # tells nginx in front not to buffer the stream
]
_MAX_REQUEST_ID = 128


def error_response(
    status: int,
    code: str | None,
    message: str,
    *,
    param: str | None = None,
    retry_after: int | None = None,
) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(
        wire.error_body(message, status=status, code=code, param=param), status, headers=headers
    )


def _coordinator(request: Request) -> Coordinator:
    coordinator: Coordinator = request.app.state.coordinator
    return coordinator


class BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


class ChatCompletions:
    """`POST /v1/chat/completions` as a bare ASGI app, the hot path.

    One disconnect guard covers the whole request: the wait in the queue, the wait for
    the first byte and the relay of the stream, so a client that leaves frees its queue
    slot or its child at any point.
    """

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        proxy = self.coordinator.proxy
        try:
            chat, raw = await self._prepare(request)
            request_id: str = request.state.request_id
            async with cancelled_on_disconnect(receive):
                answer = await proxy.open(chat, raw, request_id)
                request.state.child = answer.child.id
                if answer.stream is None:
                    media_type = answer.content_type or "application/json"
                    await Response(answer.body, answer.status, media_type=media_type)(scope, receive, send)
                    return
                async with contextlib.aclosing(proxy.relay(answer, request_id)) as relay:
                    await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
                    async for chunk in relay:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        except (ClientDisconnected, OSError):
            return  # nobody to answer; the request log records 499
        except Refusal as exc:
            status, code, message, param, retry_after = (
                exc.status,
                exc.code,
                exc.message,
                exc.param,
                exc.retry_after,
            )
        except ProxyError as exc:
            status, code, message, param, retry_after = (
                exc.status,
                exc.code,
                exc.message,
                None,
                exc.retry_after,
            )
        except PoolError as exc:
            status, code = _POOL_ERRORS.get(type(exc), (503, "unavailable"))
            message, param, retry_after = exc.message, None, exc.retry_after
        request.state.error_code = code
        await error_response(status, code, message, param=param, retry_after=retry_after)(
            scope, receive, send
        )

    async def _prepare(self, request: Request) -> tuple[wire.ChatRequest, bytes]:
        """The parsed request, or a Refusal that says why it cannot be served."""
        coordinator = self.coordinator
        settings = coordinator.settings
        if coordinator.draining:
            raise Refusal(
                503, "shutting_down", "The coordinator is shutting down; retry shortly.", retry_after=5
            )
        try:
            raw = await _read_body(request, settings.max_body_bytes)
        except BodyTooLarge:
            raise Refusal(
                413,
                "request_too_large",
                f"The request body is larger than {settings.max_body_bytes} bytes; send a shorter "
                "conversation or raise --max-body-bytes.",
            ) from None
        try:
            chat = wire.parse_chat_request(raw)
        except wire.InvalidRequest as exc:
            raise Refusal(400, exc.code, exc.message, param=exc.param) from None
        request_id = request.state.request_id
        if coordinator.pool.locate(request_id) is not None:
            raise Refusal(
                400,
                "duplicate_request_id",
                f"A request with X-Request-ID {request_id!r} is already in progress; "
                "send a unique id or none.",
            )
        request.state.model = chat.model
        request.state.stream = chat.stream
        return chat, raw


class Refusal(Exception):
    """A chat request refused at the edge, before any child is involved."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.retry_after = retry_after


async def cancel(request: Request) -> Response:
    coordinator = _coordinator(request)
    request_id = request.path_params["request_id"]
    holder = coordinator.pool.locate(request_id)
    if holder is None:
        return error_response(
            404,
            "request_not_found",
            f"No request {request_id!r} is waiting or running; it may have finished already.",
        )
    if isinstance(holder, Waiter):
        coordinator.pool.cancel_waiting(holder)
        return JSONResponse({"id": request_id, "cancelled": True, "where": "queue"})
    request.state.child = holder.id
    stopped = await coordinator.proxy.cancel_on(holder, request_id)
    if not stopped:
        return error_response(
            404, "request_not_found", f"Request {request_id!r} finished before it could be cancelled."
        )
    return JSONResponse({"id": request_id, "cancelled": True, "where": "child", "child": holder.id})


async def models(request: Request) -> Response:
    coordinator = _coordinator(request)
    created = int(coordinator.started_at)
    return JSONResponse(
        {
            "object": "list",
            "data": [
                {"id": model, "object": "model", "created": created, "owned_by": "coordinator"}
                for model in coordinator.pool.models()
            ],
        }
    )


async def metrics(request: Request) -> Response:
    return Response(_coordinator(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def openapi_description(request: Request) -> Response:
    return JSONResponse(openapi())


async def live(request: Request) -> Response:
    return JSONResponse({"status": "live"})


async def ready(request: Request) -> Response:
    summary = _coordinator(request).summary()
    return JSONResponse(summary, 200 if summary["status"] == "ready" else 503)


async def admin_children(request: Request) -> Response:
    coordinator = _coordinator(request)
    return JSONResponse(
        {"object": "list", "data": [child.snapshot() for child in coordinator.supervisor.children.values()]}
    )


async def admin_action(request: Request) -> Response:
    coordinator = _coordinator(request)
    child_id = request.path_params["child_id"]
    action = request.path_params["action"]
    child = coordinator.supervisor.children.get(child_id)
    if child is None:
        known = ", ".join(coordinator.supervisor.children) or "none"
        return error_response(404, "child_not_found", f"No child {child_id!r}; children: {known}.")
    if action == "restart":
        coordinator.supervisor.restart(child)
    elif action == "drain":
        coordinator.supervisor.drain(child)
    else:
        return error_response(404, "unknown_action", f"Unknown action {action!r}; use restart or drain.")
    return JSONResponse({"id": child.id, "action": action, "state": child.state.value}, 202)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"No route {request.url.path}; see GET /v1/models, POST /v1/chat/completions."
        return error_response(404, "not_found", message)
    if exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}."
        response = error_response(405, "method_not_allowed", message)
        if exc.headers and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    return error_response(exc.status_code, None, str(exc.detail))


async def internal_error(request: Request, exc: Exception) -> Response:
    log.error("internal_error", path=request.url.path, error=repr(exc))
    return error_response(
        500,
        "internal_error",
        "The coordinator failed on this request; the error is logged. Retry the request.",
    )


class RequestContext:
    """The edge of every /v1 and /admin request: its id, the API key, the stamped answer,
    one log line, and the request metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics, api_keys: tuple[str, ...]) -> None:
        self.app = app
        self.metrics = metrics
        self.api_keys = tuple(key.encode() for key in api_keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        state: dict[str, Any] = scope.setdefault("state", {})
        state.update(request_id=request_id, child=None, model=None, stream=None, error_code=None)
        stamp = scope["path"].startswith("/v1/")
        status = 0
        started = time.perf_counter()
        first_byte: float | None = None

        async def send_stamped(message: Message) -> None:
            nonlocal status, first_byte
            if message["type"] == "http.response.start":
                status = message["status"]
                if stamp:
                    headers = MutableHeaders(scope=message)
                    headers["X-Request-ID"] = request_id
                    headers["X-Coordinator-Child"] = state.get("child") or "-"
            elif first_byte is None and message.get("body"):
                first_byte = time.perf_counter()
            await send(message)

        try:
            if self.api_keys and not self._authorized(scope):
                state["error_code"] = "invalid_api_key"
                response = error_response(
                    401,
                    "invalid_api_key",
                    "Missing or wrong API key: send it as 'Authorization: Bearer KEY' (or 'X-API-Key: KEY').",
                )
                response.headers["WWW-Authenticate"] = "Bearer"
                await response(scope, receive, send_stamped)
            else:
                await self.app(scope, receive, send_stamped)
        finally:
            child = state.get("child")
            seconds = time.perf_counter() - started
            if scope["path"] == "/v1/chat/completions":
                self.metrics.request_done(
                    status or 499,
                    state.get("model"),
                    bool(state.get("stream")),
                    seconds,
                    first_byte - started if first_byte is not None else None,
                    state.get("error_code"),
                )
            log.info(
                "request",
                request_id=request_id,
                method=scope["method"],
                path=scope["path"],
                status=status or 499,
                child=child,
                profile=child,
                model=state.get("model"),
                stream=state.get("stream"),
                duration_ms=round(seconds * 1000, 2),
            )

    def _authorized(self, scope: Scope) -> bool:
        offered = b""
        for name, value in scope["headers"]:
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                offered = value[7:].strip()
            elif name == b"x-api-key" and not offered:
                offered = value.strip()
        # Compared with every key, in constant time: neither timing nor order says which is close.
        matches = [hmac.compare_digest(offered, key) for key in self.api_keys]
        return bool(offered) and any(matches)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if (
                0 < len(candidate) <= _MAX_REQUEST_ID
                and candidate.isascii()
                and candidate.isprintable()
                and "/" not in candidate
            ):
                return candidate
            break
    return f"req_{uuid.uuid4().hex}"


def create_app(coordinator: Coordinator) -> ASGIApp:
    routes = [
        Route("/v1/chat/completions", ChatCompletions(coordinator), methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/cancel/{request_id}", cancel, methods=["POST"]),
        Route("/live", live, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi_description, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/health", ready, methods=["GET"]),
        Route("/admin/children", admin_children, methods=["GET"]),
        Route("/admin/children/{child_id}/{action}", admin_action, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: internal_error})
    app.state.coordinator = coordinator
    return RequestContext(app, coordinator.metrics, coordinator.settings.api_keys)
