"""The child's error answers, in OpenAI's shape: one helper per kind, used by the routes
and the middleware alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from child.engines.base import EngineError
from coordinator.protocol.openai import error_body, sse_event

CANCELLED_STATUS: Final = 499  # nginx's "client closed request": the request was stopped on purpose


def error_response(
    status: int,
    message: str,
    code: str,
    *,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(message, status=status, code=code, param=param), status_code=status, headers=headers
    )


def engine_error_response(exc: EngineError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    merged = dict(headers or {})
    if exc.retry_after is not None:
        merged["Retry-After"] = str(exc.retry_after)
    return JSONResponse(engine_error_body(exc), status_code=exc.status, headers=merged)


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


def cancelled_response(request_id: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return error_response(
        CANCELLED_STATUS, f"Request {request_id} was cancelled.", "request_cancelled", headers=headers
    )


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (and any HTTPException) in OpenAI shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message, code = f"No route {request.method} {request.url.path} on this child.", "not_found"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}."
        code = "method_not_allowed"
    else:
        message, code = exc.detail, "http_error"
    return error_response(exc.status_code, message, code, headers=exc.headers)
