"""A turn relays the engine's answer events: it ends every answer with a Finish, turns an
error event into the error it means, and estimates the usage an engine cannot count."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

import pytest

from child.engines.base import EngineError, EngineState, EngineStatus, Prompt
from child.output_check import InvalidOutput
from child.session import Session
from coordinator.protocol.link import (
    AnswerError,
    AnswerEvent,
    Finish,
    FinishReason,
    ReasoningDelta,
    TextDelta,
    Usage,
)
from coordinator.protocol.request import ChatOptions, OutputFormat, OutputKind

PROMPT = Prompt(model="m", messages=({"role": "user", "content": "hi"},))


class ScriptedEngine:
    """Yields the events it was given, in order."""

    name = "scripted"

    def __init__(self, events: Sequence[AnswerEvent], reset: asyncio.Event | None = None) -> None:
        self.events = events
        self.cleanups = 0
        self.generations = 0
        self.reset = reset  # when given, each cleanup waits for it, as a slow page reset would

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def status(self) -> EngineStatus:
        return EngineStatus(state=EngineState.READY, detail="ready")

    def models(self) -> tuple[str, ...]:
        return ("m",)

    def carrying(self, prompt: Prompt) -> dict[str, str]:
        return {}

    async def screenshot(self) -> bytes:
        return b""

    async def generate(self, prompt: Prompt) -> AsyncGenerator[AnswerEvent, None]:
        self.generations += 1
        try:
            for event in self.events:
                yield event
        finally:
            # As the browser engine does: the page goes back to a new chat after every answer.
            if self.reset is not None:
                await self.reset.wait()
                self.reset.clear()
            await asyncio.sleep(0)
            self.cleanups += 1


async def _events(engine: ScriptedEngine) -> tuple[list[AnswerEvent], Session]:
    session = Session(engine)
    turn = session.begin("r1", PROMPT)
    events = [await turn.next_event()]
    while not isinstance(events[-1], Finish):
        events.append(await turn.next_event())
    await session.finish(turn)
    return events, session


async def test_an_engine_that_just_stops_has_finished_with_stop_and_an_estimate() -> None:
    engine = ScriptedEngine([ReasoningDelta("hm"), ReasoningDelta(" so"), TextDelta("a"), TextDelta(" b")])
    session = Session(engine)
    turn = session.begin("r1", PROMPT)
    events = [await turn.next_event() for _ in range(5)]
    assert events[-1] == Finish(FinishReason.STOP, None)
    assert turn.usage(Finish(), prompt_tokens=7) == Usage(prompt=7, completion=4, reasoning=2)
    await session.finish(turn)
    assert session.served == 1 and not session.busy


async def test_the_engines_own_counts_win_over_the_estimate() -> None:
    finish = Finish(FinishReason.LENGTH, Usage(prompt=1, completion=2, reasoning=0))
    events, session = await _events(ScriptedEngine([TextDelta("a"), finish, TextDelta("ignored")]))
    assert events == [TextDelta("a"), finish]
    assert session.served == 1


async def test_an_error_event_is_raised_as_the_error_it_means() -> None:
    engine = ScriptedEngine([TextDelta("a"), AnswerError("the page refused", status=400, code="refused")])
    session = Session(engine)
    turn = session.begin("r1", PROMPT)
    assert await turn.next_event() == TextDelta("a")
    with pytest.raises(EngineError) as caught:
        await turn.next_event()
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        400,
        "refused",
        "the page refused",
    )
    await session.finish(turn)
    assert session.served == 0 and not session.busy


async def test_the_finish_goes_out_before_the_cleanup_and_the_next_turn_waits_for_it() -> None:
    """[DONE] need not wait for the page's reset; the next answer must, or it would start in
    the last one's chat and answers would pile up in one conversation."""
    async with asyncio.timeout(10):  # a regression may wait forever for the reset
        await _finish_first_then_wait()


async def _finish_first_then_wait() -> None:
    reset = asyncio.Event()
    engine = ScriptedEngine([TextDelta("a"), Finish(FinishReason.STOP), TextDelta("after")], reset=reset)
    session = Session(engine)
    turn = session.begin("r1", PROMPT)
    assert await turn.next_event() == TextDelta("a")
    assert isinstance(await turn.next_event(), Finish)
    assert engine.cleanups == 0  # the reset is still to come
    await asyncio.wait_for(session.finish(turn), 1)  # and the session is free without it
    assert not session.busy and session.served == 1

    second = session.begin("r2", PROMPT)
    next_event = asyncio.ensure_future(second.next_event())
    for _ in range(20):  # every task gets to run, more than once: none may start answering yet
        await asyncio.sleep(0)
    assert not next_event.done() and engine.generations == 1
    reset.set()
    assert await asyncio.wait_for(next_event, 1) == TextDelta("a")
    assert engine.cleanups == 1 and engine.generations == 2
    reset.set()
    while not isinstance(await second.next_event(), Finish):
        pass
    await session.finish(second)
    await session.close()  # lets the last reset end before the engine goes
    assert engine.cleanups == 2


async def test_an_answer_that_breaks_the_asked_schema_ends_with_invalid_output_not_the_finish() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    options = ChatOptions(output=OutputFormat(OutputKind.JSON_SCHEMA, "N", schema, True))
    asked = Prompt(model="m", messages=PROMPT.messages, options=options)
    for text, fine in (('{"n": 1}', True), ("Sure, n is 1", False)):
        engine = ScriptedEngine([TextDelta(text), Finish()])
        session = Session(engine)
        turn = session.begin("r1", asked)
        assert await turn.next_event() == TextDelta(text)  # the text streams as it comes
        if fine:
            assert await turn.next_event() == Finish()
        else:
            with pytest.raises(InvalidOutput, match="'N'"):
                await turn.next_event()
        await session.finish(turn)
        await turn.settled()  # the page's reset, whatever the answer
        assert engine.cleanups == 1 and not session.busy
