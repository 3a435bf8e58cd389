"""The child's answers: a `Reply` (status, JSON body, headers) and one helper per kind of
error, in OpenAI's shape, used by the routes and the token check alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from child.engines.base import EngineError
from coordinator.http_server import Request
from coordinator.protocol.openai import error_body, sse_event

CANCELLED_STATUS: Final = 499  # nginx's "client closed request": the request was stopped on purpose


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole answer, sent in one write."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: bytes = b"application/json"

    async def send(self, request: Request) -> None:
        headers = [(b"content-type", self.content_type), *encode_headers(self.headers)]
        await request.respond(self.status, headers, self.body)


def encode_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """Headers as the server writes them."""
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


def json_reply(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, orjson.dumps(body), headers or {})


def error_reply(
    status: int,
    message: str,
    code: str,
    *,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    return json_reply(error_body(message, status=status, code=code, param=param), status, headers)


def engine_error_reply(exc: EngineError, headers: Mapping[str, str] | None = None) -> Reply:
    merged = dict(headers or {})
    if exc.retry_after is not None:
        merged["Retry-After"] = str(exc.retry_after)
    return json_reply(engine_error_body(exc), exc.status, merged)


def engine_error_body(exc: EngineError) -> dict[str, Any]:
    """The error body of an engine's error, with the model a quota is for when it names one."""
    body = error_body(exc.message, status=exc.status, code=exc.code, param=exc.param)
    model = getattr(exc, "model", None)
    if isinstance(model, str):
        # A quota is per model: the coordinator reads which one here (QuotaExhausted).
        body["error"]["model"] = model
    return body


def engine_error_event(exc: EngineError) -> bytes:
    """The SSE event that ends a stream an engine's error cut short, no `[DONE]` after it.

    No header can carry a Retry-After once the stream has begun, so a refusal that has one
    (a quota, a rate limit) says it in the event (`retry_after`, seconds): the coordinator
    notes the cooldown from it as it would from a header."""
    body = engine_error_body(exc)
    if exc.retry_after is not None:
        body["error"]["retry_after"] = exc.retry_after
    return sse_event(body)


def cancelled_reply(request_id: str, headers: Mapping[str, str] | None = None) -> Reply:
    return error_reply(
        CANCELLED_STATUS, f"Request {request_id} was cancelled.", "request_cancelled", headers=headers
    )


def server_error_body(status: int, code: str, message: str, path: str) -> bytes:
    """The body of what the server itself refuses or fails (see `HttpServer.error_body`)."""
    return orjson.dumps(error_body(message, status=status, code=code))
