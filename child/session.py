"""One request at a time: the turn in progress, its stop signal, and the served count.

A turn runs the engine's generator of answer events in a task of its own (the pump) that
feeds a queue, so the HTTP side can wait for the next event, a cancel, or the client
leaving, whichever comes first, and stopping is always the same act: cancel the pump,
wait for it.

An answer ends for its client as soon as its last event is in: the engine's cleanup (the
page's reset to a new chat, about 100 ms) runs after, while the session is already free,
and the next turn waits for it before it starts generating, so no answer starts on top
of the last one.
No scheduling here: a second request while one runs is refused, never queued.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

import structlog

from child.engines.base import Engine, EngineError, Prompt
from child.output_check import OutputCheck
from coordinator.protocol.link import AnswerError, AnswerEvent, Finish, ReasoningDelta, TextDelta, Usage

log = structlog.get_logger("child.session")

# How long to wait for an engine to stop generating before giving the slot back anyway.
STOP_TIMEOUT_S: Final = 5.0


class SessionBusy(Exception):
    """Another request holds the session."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"request {request_id} is in progress")
        self.request_id = request_id


class RequestCancelled(Exception):
    """The turn was stopped by POST /v1/cancel/{id}."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"request {request_id} was cancelled")
        self.request_id = request_id


class Turn:
    """The request in progress. Read events with `next_event` until it returns a Finish."""

    def __init__(
        self, request_id: str, engine: Engine, prompt: Prompt, after: asyncio.Task[None] | None = None
    ) -> None:
        self.request_id = request_id
        self.tokens = 0
        self.reasoning_tokens = 0
        self.completed = False  # the Finish has been read
        self._delivered = False  # the Finish is queued: what the pump does now is cleanup
        self._stopping = False
        self._queue: asyncio.Queue[AnswerEvent | BaseException] = asyncio.Queue()
        self._pump = asyncio.create_task(self._run(engine, prompt, after), name=f"turn-{request_id}")
        # A done-callback rather than an `except` in the pump: a pump cancelled before it
        # ever ran must still wake whoever waits for its next delta.
        self._pump.add_done_callback(self._pump_done)

    async def next_event(self) -> AnswerEvent:
        """The next event; a Finish is the last. Raises EngineError or RequestCancelled.

        `tokens` counts the text and reasoning deltas (`reasoning_tokens` the latter): the
        estimate of the completion's length when the engine cannot count.
        """
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, Finish):
            self.completed = True
        elif isinstance(item, TextDelta | ReasoningDelta):
            self.tokens += 1
            self.reasoning_tokens += isinstance(item, ReasoningDelta)
        return item

    def usage(self, finish: Finish, prompt_tokens: int) -> Usage:
        """The engine's counts, or the estimate: `prompt_tokens` and the deltas seen."""
        return finish.usage or Usage(prompt_tokens, self.tokens, self.reasoning_tokens)

    async def stop(self) -> None:
        """Stop the engine if it is still generating, and wait (bounded) until it has.

        The pump is cancelled once: a second cancel (a cancel request and the client's
        disconnect, say) would interrupt the engine's own cleanup, which stops the page. Nor
        is it cancelled once the answer is whole: what it does then is that cleanup.
        """
        if not self._stopping and not self._delivered:
            self._stopping = True
            self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._pump), STOP_TIMEOUT_S)

    async def settled(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Wait (bounded) until the engine is done with this turn, cleanup included."""
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._pump), timeout)

    async def _run(self, engine: Engine, prompt: Prompt, after: asyncio.Task[None] | None) -> None:
        if after is not None:
            # The last turn's engine may still be resetting the page: start on a clean one.
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(after), STOP_TIMEOUT_S)
        try:
            # An engine that just stops has finished normally.
            finish = Finish()
            # JSON and strict arguments checked before the finish goes out: a mismatch
            # ends the answer with an error instead (the text may have streamed already).
            check = OutputCheck(prompt.options)  # a schema that is none: 400, nothing asked
            # aclosing: the engine's own cleanup (the page's reset to a new chat) runs when
            # the block ends, after the Finish has gone to the client.
            async with contextlib.aclosing(engine.generate(prompt)) as events:
                async for event in events:
                    if isinstance(event, AnswerError):
                        raise _engine_error(event)
                    if isinstance(event, Finish):
                        finish = event
                        break
                    check.feed(event)
                    self._queue.put_nowait(event)
                check.finish()
                self._delivered = True
                self._queue.put_nowait(finish)
        except EngineError as exc:
            self._failed(exc)
        except Exception as exc:
            # An engine bug must not leave the client hanging; the traceback goes to the log,
            # the client gets a generic message (an exception text may quote the page).
            log.exception("engine_failed", request_id=self.request_id)
            self._failed(EngineError(f"the engine failed unexpectedly ({type(exc).__name__})"))

    def _failed(self, error: EngineError) -> None:
        if self._delivered:  # the answer went out whole; only the cleanup after it failed
            log.warning("engine_cleanup_failed", request_id=self.request_id, error=error.message)
        else:
            self._queue.put_nowait(error)

    def _pump_done(self, pump: asyncio.Task[None]) -> None:
        if pump.cancelled() and not self._delivered:
            self._queue.put_nowait(RequestCancelled(self.request_id))


def _engine_error(event: AnswerError) -> EngineError:
    error = EngineError(event.message)
    error.status = event.status
    error.code = event.code
    return error


class Session:
    """Holds the engine and at most one Turn; `finish` always gives the slot back."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.served = 0
        self._turn: Turn | None = None
        self._last: Turn | None = None  # whose cleanup the next turn waits for

    @property
    def busy(self) -> bool:
        return self._turn is not None

    @property
    def request_id(self) -> str | None:
        return self._turn.request_id if self._turn is not None else None

    def begin(self, request_id: str, prompt: Prompt) -> Turn:
        """Take the session for one request and start generating, or raise SessionBusy.

        Synchronous on purpose: the check and the claim happen with no await between.
        """
        if self._turn is not None:
            raise SessionBusy(self._turn.request_id)
        last = self._last._pump if self._last is not None and not self._last._pump.done() else None
        self._turn = Turn(request_id, self.engine, prompt, after=last)
        return self._turn

    async def finish(self, turn: Turn) -> None:
        """Release the session; safe to call twice. A turn cut short is stopped first; a
        whole one is released at once, its engine's cleanup left to run on its own."""
        try:
            if not turn.completed:
                await turn.stop()
        finally:
            if self._turn is turn:
                self._turn = None
                self._last = turn
                if turn.completed:
                    self.served += 1

    async def cancel(self, request_id: str) -> bool:
        """Stop the request in progress if it has this id; False if it is not running.

        Returns once the engine has stopped generating; the turn's own client is told
        (RequestCancelled) and gives the session back as it unwinds.
        """
        turn = self._turn
        if turn is None or turn.request_id != request_id:
            return False
        await turn.stop()
        return True

    async def close(self) -> None:
        """At shutdown: stop the turn in progress, if any (its handler releases it), and let
        the last one's cleanup end before the engine goes."""
        if self._turn is not None:
            await self._turn.stop()
        if self._last is not None:
            await self._last.settled()
