"""Reading a child's chat chunks back into events: whatever way the bytes are split."""

from __future__ import annotations

from typing import Any

from coordinator.protocol import chatstream as cs
from coordinator.protocol import openai as wire
from coordinator.protocol.link import FinishReason, ReasoningDelta, TextDelta, ToolCall, Usage
from tests.support.answers import Delta, chat_stream

DELTAS: list[Delta] = [
    ReasoningDelta("hm "),
    TextDelta("one "),
    TextDelta("two"),
    ToolCall("call_1", "f", '{"a": 1}'),
]
EXPECTED = [
    cs.ReasoningDelta("hm "),
    cs.TextDelta("one "),
    cs.TextDelta("two"),
    cs.ToolStart(0, "call_1", "f"),
    cs.ToolArguments(0, '{"a": 1}'),
    cs.Finish("tool_calls"),
    cs.Usage(7, 5, 2),
    cs.Done(),
]


def test_a_whole_stream_reads_as_its_events() -> None:
    body = chat_stream(DELTAS, FinishReason.TOOL_CALLS)
    assert cs.ChunkReader().feed(body) == EXPECTED


def test_bytes_split_anywhere_read_the_same() -> None:
    body = chat_stream(DELTAS, FinishReason.TOOL_CALLS)
    for size in (1, 3, 17):
        reader = cs.ChunkReader()
        events = []
        for start in range(0, len(body), size):
            events += reader.feed(body[start : start + size])
        assert events == EXPECTED, size


def test_arguments_split_over_chunks_follow_their_call() -> None:
    def chunk(call: dict[str, Any]) -> bytes:
        return wire.sse_event({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})

    body = (
        chunk({"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": ""}})
        + chunk({"index": 0, "function": {"arguments": '{"a"'}})
        + chunk({"index": 0, "function": {"arguments": ":1}"}})
    )
    assert cs.ChunkReader().feed(body) == [
        cs.ToolStart(0, "c", "f"),
        cs.ToolArguments(0, '{"a"'),
        cs.ToolArguments(0, ":1}"),
    ]


def test_an_error_event_fails_the_stream_and_nothing_after_it_counts() -> None:
    body = wire.sse_error("child died", status=502, code="child_failed") + b'data: {"choices":[]}\n\n'
    assert cs.ChunkReader().feed(body) == [cs.Failed("child died", 502, "child_failed")]


def test_an_event_that_is_not_json_fails_the_stream() -> None:
    (event,) = cs.ChunkReader().feed(b"data: {nope\n\n")
    assert isinstance(event, cs.Failed)


def test_comments_are_skipped() -> None:
    assert cs.ChunkReader().feed(b": keep-alive\n\n") == []


def test_an_endless_event_is_given_up_not_buffered() -> None:
    reader = cs.ChunkReader()
    (event,) = reader.feed(b"data: " + b"x" * (cs.MAX_EVENT_BYTES + 1))
    assert isinstance(event, cs.Failed)
    assert reader.feed(b"\n\n") == []


def test_usage_reads_what_is_there() -> None:
    assert cs.usage_of({"prompt_tokens": 3}) == cs.Usage(3, 0, 0)
    assert cs.usage_of(wire.Answer.usage(Usage(1, 2, 1))) == cs.Usage(1, 2, 1)
