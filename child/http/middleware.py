"""The child's middleware: the per-run token check, and the last-line guard that turns an
unexpected exception into an OpenAI-shaped 500.
"""

from __future__ import annotations

import hmac

import structlog
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from child.http.responses import error_response
from coordinator.protocol.link import TOKEN_HEADER

log = structlog.get_logger("child.http.middleware")


class TokenCheck:
    """Every route but GET /health needs the per-run token; without it, 403 before routing."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["path"] == "/health" and scope["method"] in ("GET", "HEAD")):
            await self.app(scope, receive, send)
            return
        supplied = Headers(scope=scope).get(TOKEN_HEADER, "").encode()
        if not hmac.compare_digest(supplied, self._token):
            response = error_response(
                403,
                f"Missing or wrong {TOKEN_HEADER}: only the coordinator may call this child.",
                "invalid_child_token",
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class Guard:
    """Last line: an unexpected exception becomes a 500 in OpenAI shape, never a traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled_error", method=scope["method"], path=scope["path"])
            if not started:
                response = error_response(
                    500, "The child failed on this request; see its log.", "internal_error"
                )
                await response(scope, receive, send)
