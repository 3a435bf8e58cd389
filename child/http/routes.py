"""The child's routes: /health, /v1/models, /v1/chat/completions, /v1/cancel/{id} and
/screenshot (a PNG of the page), every answer but the picture in OpenAI's shape.

`ChildApp` is the application the child's `HttpServer` (`coordinator.http_server`, the
coordinator's own) asks about each request: `admit` checks the per-run token and finds
the route from the head alone, then `__call__` answers. Engine and session errors become
HTTP statuses here and nowhere else (with the helpers of `child.http.responses`). A
streaming answer sends no status line until the engine has produced its first event, so
a failure before that is a plain HTTP error the coordinator can retry on another child.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, cast

import structlog

from child.engines.base import Engine, EngineError, EngineState, Prompt, unavailable
from child.http.responses import (
    CANCELLED_STATUS,
    Reply,
    cancelled_reply,
    encode_headers,
    engine_error_event,
    engine_error_reply,
    error_reply,
    json_reply,
)
from child.session import RequestCancelled, Session, SessionBusy, Turn
from child.settings import ChildSettings
from coordinator.http_server import Admission, Request
from coordinator.protocol.link import (
    TOKEN_HEADER,
    AnswerError,
    AnswerEvent,
    Finish,
    Health,
    HealthStatus,
    SettingApplied,
)
from coordinator.protocol.openai import (
    Answer,
    AnswerStream,
    Delta,
    InvalidRequest,
    message_text,
    parse_chat_request,
    run_settings,
    sse_error,
)

log = structlog.get_logger("child.http.routes")

BROKEN_POLL_S = 0.5
# Only the coordinator calls a child, and it bounds what its clients send
# (--max-body-bytes): this is a backstop, not the limit users meet.
CHAT_BODY_LIMIT: Final = 1024**3
OTHER_BODY_LIMIT: Final = 64 * 1024
_CANCEL_PREFIX: Final = "/v1/cancel/"
_TOKEN_HEADER: Final = TOKEN_HEADER.lower()

Handler = Callable[[Request], Awaitable[Reply | None]]


def count_words(messages: list[Any]) -> int:
    # No tokenizer for a site we drive through its page: words are the honest approximation.
    return sum(len(message_text(m).split()) for m in messages if isinstance(m, dict))


@dataclass(slots=True)
class _Exchange:
    """What the log needs to know about one chat request, filled in as it unfolds."""

    request_id: str
    stream: bool
    started: float
    status: int | None = None
    # Why the answer stopped if nothing recorded an outcome: the client left, or shutdown.
    interrupted_by: str = "disconnect"
    released: bool = False

    def finished(self, turn: Turn) -> None:
        if self.status is None:
            self.status = CANCELLED_STATUS
            log.info("request_cancelled", request_id=self.request_id, reason=self.interrupted_by)
        log.info(
            "request_finished",
            request_id=self.request_id,
            status=self.status,
            duration_ms=round((time.monotonic() - self.started) * 1000),
            stream=self.stream,
            tokens=turn.tokens,
        )


async def _collect(turn: Turn, headers: dict[str, str]) -> tuple[list[Delta], Finish]:
    deltas: list[Delta] = []
    while not isinstance(event := await turn.next_event(), Finish):
        assert not isinstance(event, AnswerError)  # the turn raises these
        if isinstance(event, SettingApplied):
            headers[setting_header(event)] = event.value
        else:
            deltas.append(event)
    return deltas, event


async def _first(turn: Turn, headers: dict[str, str]) -> AnswerEvent:
    """The first event of the answer itself; the settings reported before it become headers."""
    while isinstance(event := await turn.next_event(), SettingApplied):
        headers[setting_header(event)] = event.value
    return event


def setting_header(event: SettingApplied) -> str:
    return f"X-Coordinator-{event.name}"


class ChildApp:
    """The routes, and the engine's start and watch, for the child's `HttpServer`."""

    def __init__(
        self, settings: ChildSettings, session: Session, on_engine_failure: Callable[[], None]
    ) -> None:
        self.settings = settings
        self.session = session
        self.engine: Engine = session.engine
        self.on_engine_failure = on_engine_failure
        self.created = int(time.time())
        self._token = settings.token.encode()
        # Each path has one handler, for these methods (GET takes HEAD too).
        self._routes: dict[str, tuple[tuple[str, ...], Handler]] = {
            "/v1/chat/completions": (("POST",), self.chat),
            "/health": (("GET", "HEAD"), self.health),
            "/v1/models": (("GET", "HEAD"), self.models),
            "/screenshot": (("GET", "HEAD"), self.screenshot),
        }

    # -- the server's two questions -------------------------------------------------------

    def admit(self, request: Request) -> Admission:
        """The token first (every route but GET /health needs it), then the route and method;
        a refusal is answered without reading the body."""
        path, method = request.path, request.method
        if not (path == "/health" and method in ("GET", "HEAD")):
            supplied = request.headers.get(_TOKEN_HEADER, "").encode()
            if not hmac.compare_digest(supplied, self._token):
                return self._refuse(
                    403,
                    f"Missing or wrong {TOKEN_HEADER}: only the coordinator may call this child.",
                    "invalid_child_token",
                )
        methods: tuple[str, ...]
        handler: Handler
        cancel_id = path[len(_CANCEL_PREFIX) :] if path.startswith(_CANCEL_PREFIX) else ""
        if cancel_id and "/" not in cancel_id:
            methods, handler = ("POST",), self.cancel
        elif path in self._routes:
            methods, handler = self._routes[path]
        else:
            return self._refuse(404, f"No route {method} {path} on this child.", "not_found")
        if method not in methods:
            return self._refuse(
                405,
                f"Method {method} is not allowed on {path}.",
                "method_not_allowed",
                headers={"Allow": ", ".join(methods)},
            )
        limit = CHAT_BODY_LIMIT if handler == self.chat else OTHER_BODY_LIMIT
        return Admission(limit, decision=handler)

    @staticmethod
    def _refuse(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> Admission:
        return Admission(0, refused=True, decision=error_reply(status, message, code, headers=headers))

    async def __call__(self, request: Request) -> None:
        decision = request.decision
        reply = decision if isinstance(decision, Reply) else await cast(Handler, decision)(request)
        if reply is not None:
            await reply.send(request)

    # -- the engine -------------------------------------------------------------------------

    async def boot(self) -> None:
        """Start the engine (/health says "starting" meanwhile), then watch it: a broken
        engine (the browser died) is not nursed here; the child exits, to be restarted fresh."""
        try:
            await self.engine.start()
            log.info("child_ready", models=list(self.engine.models()), state=self.engine.status().state.value)
        except EngineError as exc:
            log.error("child_start_failed", error=exc.message, code=exc.code)
            self.on_engine_failure()
            return
        except Exception:
            log.exception("child_start_failed")
            self.on_engine_failure()
            return
        while (status := self.engine.status()).state is not EngineState.BROKEN:
            await asyncio.sleep(BROKEN_POLL_S)
        log.error("engine_broken", detail=status.detail)
        self.on_engine_failure()

    # -- the routes -------------------------------------------------------------------------

    async def health(self, request: Request) -> Reply:
        status = self.engine.status()
        if status.state is EngineState.READY:
            state = HealthStatus.BUSY if self.session.busy else HealthStatus.READY
        else:
            state = HealthStatus(status.state.value)
        health = Health(
            status=state,
            detail=status.detail,
            profile=self.settings.profile,
            engine=self.engine.name,
            pid=os.getpid(),
            browser_pid=status.browser_pid,
            browser_connected=status.browser_connected,
            models=tuple(self.engine.models()),
            retry_after=status.retry_after,
            quota=status.quota,
            request_id=self.session.request_id,
            served=self.session.served,
            api_port=self.settings.api_port,
            stream_port=self.settings.stream_port,
            browser_port=self.settings.browser_port,
            selectors_missing=status.selectors_missing,
            answers_from_dom=status.answers_from_dom,
        )
        return json_reply(health.to_json(), health.http_status)

    async def models(self, request: Request) -> Reply:
        data = [
            {"id": model, "object": "model", "created": self.created, "owned_by": "coordinator"}
            for model in self.engine.models()
        ]
        return json_reply({"object": "list", "data": data})

    async def screenshot(self, request: Request) -> Reply:
        """The engine's page as a PNG, for the coordinator's dashboard; 503 while there is none."""
        try:
            png = await self.engine.screenshot()
        except EngineError as exc:
            return engine_error_reply(exc)
        return Reply(200, png, {"cache-control": "no-store"}, content_type=b"image/png")

    async def cancel(self, request: Request) -> Reply:
        request_id = request.path[len(_CANCEL_PREFIX) :]
        if await self.session.cancel(request_id):
            log.info("request_cancelled", request_id=request_id, reason="cancel")
            return json_reply({"id": request_id, "cancelled": True})
        return error_reply(
            404, f"No request {request_id!r} is in progress on this child.", "request_not_found"
        )

    async def chat(self, request: Request) -> Reply | None:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        headers = {"X-Request-ID": request_id}
        started = time.monotonic()
        try:
            chat = parse_chat_request(request.body)
        except InvalidRequest as exc:
            return error_reply(400, exc.message, exc.code, param=exc.param, headers=headers)

        model = self._choose_model(chat.model)
        if isinstance(model, Reply):
            return Reply(model.status, model.body, {**model.headers, **headers})
        # Everything that can fail is done before the turn is taken: from `begin` on, only
        # `_serve`'s try/finally stands between the turn and its release, or the child would
        # answer child_busy for ever.
        messages: list[Any] = chat.body["messages"]
        prompt = Prompt(
            model=model,
            messages=tuple(messages),
            settings=run_settings(chat.body),
            options=chat.options,
            attachments=chat.attachments,
        )
        try:
            headers.update(self.engine.carrying(prompt))
        except EngineError as exc:
            return engine_error_reply(exc, headers)
        prompt_tokens = count_words(messages)
        answer = Answer(request_id, model, created=int(time.time()), include_usage=chat.include_usage)
        exchange = _Exchange(request_id, stream=chat.stream, started=started)
        try:
            turn = self.session.begin(request_id, prompt)
        except SessionBusy:
            return error_reply(
                429,
                "This child is already serving a request; it takes one at a time.",
                "child_busy",
                headers=headers,
            )
        return await self._serve(request, turn, answer, prompt_tokens, exchange, headers)

    def _choose_model(self, requested: str | None) -> str | Reply:
        """The model to answer with, or the error that says why this child cannot."""
        status = self.engine.status()
        if status.state is not EngineState.READY:
            return engine_error_reply(unavailable(status))
        offered = self.engine.models()
        if requested is not None and requested not in offered:
            return error_reply(
                404,
                f"The model {requested!r} is not offered here; this child offers: {', '.join(offered)}.",
                "model_not_found",
                param="model",
            )
        if not offered:
            return engine_error_reply(unavailable(status))
        return requested or offered[0]

    async def _serve(
        self,
        request: Request,
        turn: Turn,
        answer: Answer,
        prompt_tokens: int,
        exchange: _Exchange,
        headers: dict[str, str],
    ) -> Reply | None:
        """Answer from a turn already begun; whatever happens, the turn is released.

        A client that leaves (or the server's shutdown) cancels this task wherever it
        waits: the turn is released all the same, which stops the page's generation."""
        try:
            if exchange.stream:
                # No status line before the first token: an early failure stays a plain HTTP error.
                first = await _first(turn, headers)
                request.start(
                    200,
                    encode_headers(
                        {**headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
                    ),
                )
                await self._stream(request, turn, first, answer.stream(), prompt_tokens, exchange)
                return None
            deltas, finish = await _collect(turn, headers)
            exchange.status = 200
            return json_reply(
                answer.completion(deltas, finish.reason, turn.usage(finish, prompt_tokens)), headers=headers
            )
        except RequestCancelled:
            exchange.status = CANCELLED_STATUS
            return cancelled_reply(answer.request_id, headers)
        except EngineError as exc:
            exchange.status = exc.status
            return engine_error_reply(exc, headers)
        except asyncio.CancelledError:
            exchange.interrupted_by = request.cancelled_by or "disconnect"
            raise
        finally:
            await self._release(turn, exchange)

    async def _stream(
        self,
        request: Request,
        turn: Turn,
        first: AnswerEvent,
        stream: AnswerStream,
        prompt_tokens: int,
        exchange: _Exchange,
    ) -> None:
        """The SSE body from the first event on; an error ends it with an error event, no [DONE].

        The session is released before the last event goes out: a client that sends its
        next request the moment it reads [DONE] must find the child free, not busy.
        """
        request_id = stream.answer.request_id
        try:
            event = first
            while not isinstance(event, Finish):
                assert not isinstance(event, AnswerError)  # the turn raises these
                if not isinstance(event, SettingApplied):  # the headers are out: only before the first
                    await request.write(stream.delta(event))
                event = await turn.next_event()
        except RequestCancelled:
            exchange.status = CANCELLED_STATUS
            ending = sse_error(
                f"Request {request_id} was cancelled.", status=CANCELLED_STATUS, code="request_cancelled"
            )
        except EngineError as exc:
            exchange.status = exc.status
            ending = engine_error_event(exc)
        else:
            exchange.status = 200
            ending = stream.end(event.reason, turn.usage(event, prompt_tokens))
        await self._release(turn, exchange)
        await request.end(ending)

    async def _release(self, turn: Turn, exchange: _Exchange) -> None:
        """Give the session back and log the outcome, once, whichever path gets here first."""
        if exchange.released:
            return
        exchange.released = True
        try:
            await self.session.finish(turn)
        finally:
            exchange.finished(turn)
