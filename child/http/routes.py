"""The child's routes: /health, /v1/models, /v1/chat/completions, /v1/cancel/{id} and
/screenshot (a PNG of the page), every answer but the picture in OpenAI's shape.

Engine and session errors become HTTP statuses here and nowhere else (with the helpers
of `child.http.responses`). A streaming answer sends no status line until the engine has
produced its first event, so a failure before that is a plain HTTP error the coordinator
can retry on another child.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Mapping,
)
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from child.engines.base import Engine, EngineError, EngineState, Prompt, unavailable
from child.http.middleware import Guard, TokenCheck
from child.http.responses import (
    CANCELLED_STATUS,
    cancelled_response,
    engine_error_event,
    engine_error_response,
    error_response,
    http_error,
)
from child.session import RequestCancelled, Session, SessionBusy, Turn
from child.settings import ChildSettings
from coordinator.protocol.link import AnswerError, AnswerEvent, Finish, Health, HealthStatus, SettingApplied
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

T = TypeVar("T")

BROKEN_POLL_S = 0.5


def count_words(messages: list[Any]) -> int:
    # No tokenizer for a site we drive through its page: words are the honest approximation.
    return sum(len(message_text(m).split()) for m in messages if isinstance(m, dict))


class _ClientGone(Exception):
    """The client closed the connection before its answer was complete."""


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


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _unless_gone(work: Coroutine[Any, Any, T], gone: asyncio.Task[None]) -> T:
    """Run `work` until done, or raise _ClientGone (cancelling it) if the client leaves first."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        raise _ClientGone
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


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


class _TurnStream(StreamingResponse):
    """An SSE response that releases its turn however the stream ends (done, error, disconnect)."""

    def __init__(
        self,
        events: AsyncGenerator[bytes, None],
        exchange: _Exchange,
        on_close: Callable[[], Awaitable[None]],
        headers: Mapping[str, str],
    ) -> None:
        super().__init__(events, media_type="text/event-stream", headers=headers)
        self._events = events
        self._exchange = exchange
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            # A disconnect ends the body without cancelling us; only the server's shutdown does.
            self._exchange.interrupted_by = "shutdown"
            raise
        finally:
            # Starlette cancels the body on disconnect; a generator caught between chunks
            # would otherwise be finalized whenever the GC gets to it.
            await self._events.aclose()
            await self._on_close()


class _Handlers:
    def __init__(
        self, settings: ChildSettings, session: Session, on_engine_failure: Callable[[], None]
    ) -> None:
        self.settings = settings
        self.session = session
        self.engine: Engine = session.engine
        self.on_engine_failure = on_engine_failure
        self.created = int(time.time())

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        log.info(
            "child_started",
            profile=self.settings.profile,
            engine=self.engine.name,
            port=self.settings.api_port,
            pid=os.getpid(),
        )
        # The engine starts in the background so /health can say "starting" meanwhile.
        boot = asyncio.create_task(self._boot(), name="engine-start")
        try:
            yield
        finally:
            boot.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await boot
            # uvicorn has cancelled any request still running; stop its generation before
            # the browser goes away under it.
            await self.session.close()
            await self.engine.close()
            log.info("child_stopped", served=self.session.served)

    async def _boot(self) -> None:
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
        # A broken engine (the browser died) is not nursed here: exit, and be restarted fresh.
        while (status := self.engine.status()).state is not EngineState.BROKEN:
            await asyncio.sleep(BROKEN_POLL_S)
        log.error("engine_broken", detail=status.detail)
        self.on_engine_failure()

    async def health(self, request: Request) -> Response:
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
        return JSONResponse(health.to_json(), status_code=health.http_status)

    async def models(self, request: Request) -> Response:
        data = [
            {"id": model, "object": "model", "created": self.created, "owned_by": "coordinator"}
            for model in self.engine.models()
        ]
        return JSONResponse({"object": "list", "data": data})

    async def screenshot(self, request: Request) -> Response:
        """The engine's page as a PNG, for the coordinator's dashboard; 503 while there is none."""
        try:
            png = await self.engine.screenshot()
        except EngineError as exc:
            return engine_error_response(exc)
        return Response(png, media_type="image/png", headers={"cache-control": "no-store"})

    async def cancel(self, request: Request) -> Response:
        request_id: str = request.path_params["request_id"]
        if await self.session.cancel(request_id):
            log.info("request_cancelled", request_id=request_id, reason="cancel")
            return JSONResponse({"id": request_id, "cancelled": True})
        return error_response(
            404, f"No request {request_id!r} is in progress on this child.", "request_not_found"
        )

    async def chat(self, request: Request) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        headers = {"X-Request-ID": request_id}
        started = time.monotonic()
        try:
            chat = parse_chat_request(await request.body())
        except InvalidRequest as exc:
            return error_response(400, exc.message, exc.code, param=exc.param, headers=headers)
        except ClientDisconnect:
            return Response(status_code=CANCELLED_STATUS)

        model = self._choose_model(chat.model)
        if isinstance(model, JSONResponse):
            model.headers.update(headers)
            return model
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
            return engine_error_response(exc, headers)
        prompt_tokens = count_words(messages)
        answer = Answer(request_id, model, created=int(time.time()), include_usage=chat.include_usage)
        exchange = _Exchange(request_id, stream=chat.stream, started=started)
        try:
            turn = self.session.begin(request_id, prompt)
        except SessionBusy:
            return error_response(
                429,
                "This child is already serving a request; it takes one at a time.",
                "child_busy",
                headers=headers,
            )
        return await self._serve(request, turn, answer, prompt_tokens, exchange, headers)

    def _choose_model(self, requested: str | None) -> str | JSONResponse:
        """The model to answer with, or the error that says why this child cannot."""
        status = self.engine.status()
        if status.state is not EngineState.READY:
            return engine_error_response(unavailable(status))
        offered = self.engine.models()
        if requested is not None and requested not in offered:
            return error_response(
                404,
                f"The model {requested!r} is not offered here; this child offers: {', '.join(offered)}.",
                "model_not_found",
                param="model",
            )
        if not offered:
            return engine_error_response(unavailable(status))
        return requested or offered[0]

    async def _serve(
        self,
        request: Request,
        turn: Turn,
        answer: Answer,
        prompt_tokens: int,
        exchange: _Exchange,
        headers: dict[str, str],
    ) -> Response:
        """Answer from a turn already begun; whatever happens, the turn is released."""
        gone: asyncio.Task[None] | None = None
        handed_off = False
        try:
            gone = asyncio.create_task(_until_disconnect(request.receive), name=f"watch-{answer.request_id}")
            if exchange.stream:
                # No status line before the first token: an early failure stays a plain HTTP error.
                first = await _unless_gone(_first(turn, headers), gone)
                handed_off = True
                release = functools.partial(self._release, turn, exchange)
                return _TurnStream(
                    _events(turn, first, answer.stream(), prompt_tokens, exchange, release),
                    exchange,
                    on_close=release,
                    headers={**headers, "Cache-Control": "no-cache"},
                )
            deltas, finish = await _unless_gone(_collect(turn, headers), gone)
            exchange.status = 200
            body = answer.completion(deltas, finish.reason, turn.usage(finish, prompt_tokens))
            return JSONResponse(body, headers=headers)
        except RequestCancelled:
            exchange.status = CANCELLED_STATUS
            return cancelled_response(answer.request_id, headers)
        except EngineError as exc:
            exchange.status = exc.status
            return engine_error_response(exc, headers)
        except _ClientGone:
            return Response(status_code=CANCELLED_STATUS)  # nobody is left to read it
        except asyncio.CancelledError:
            exchange.interrupted_by = "shutdown"
            raise
        finally:
            if gone is not None:
                gone.cancel()
            if not handed_off:
                await self._release(turn, exchange)

    async def _release(self, turn: Turn, exchange: _Exchange) -> None:
        """Give the session back and log the outcome, once, whichever path gets here first."""
        if exchange.released:
            return
        exchange.released = True
        try:
            await self.session.finish(turn)
        finally:
            exchange.finished(turn)


async def _events(
    turn: Turn,
    first: AnswerEvent,
    stream: AnswerStream,
    prompt_tokens: int,
    exchange: _Exchange,
    release: Callable[[], Awaitable[None]],
) -> AsyncGenerator[bytes, None]:
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
                yield stream.delta(event)
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
    await release()
    yield ending


def create_app(
    settings: ChildSettings,
    session: Session,
    *,
    on_engine_failure: Callable[[], None] = lambda: None,
) -> Starlette:
    """The child's ASGI app. `on_engine_failure` is called if the engine fails to start or breaks."""
    handlers = _Handlers(settings, session, on_engine_failure)
    # No two routes match the same path: the router tries them in order, the busiest first.
    routes = [
        Route("/v1/chat/completions", handlers.chat, methods=["POST"]),
        Route("/health", handlers.health, methods=["GET"]),
        Route("/v1/models", handlers.models, methods=["GET"]),
        Route("/screenshot", handlers.screenshot, methods=["GET"]),
        Route("/v1/cancel/{request_id}", handlers.cancel, methods=["POST"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(Guard), Middleware(TokenCheck, token=settings.token)],
        exception_handlers={HTTPException: http_error},
        lifespan=handlers.lifespan,
    )
