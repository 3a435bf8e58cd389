"""A child's answers as the child itself encodes them, and SSE read back, for the adapters' tests.

The chat chunks come from `coordinator.protocol.openai.Answer`, the encoder the child uses,
so a translation is tested against the bytes it really gets.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from coordinator.protocol import openai as wire
from coordinator.protocol.link import FinishReason, ReasoningDelta, TextDelta, ToolCall, Usage

Delta = TextDelta | ReasoningDelta | ToolCall
ANSWER = wire.Answer("req_1", "mock", 1_700_000_000, include_usage=True)


def chat_stream(
    deltas: Sequence[Delta], reason: FinishReason = FinishReason.STOP, usage: Usage = Usage(7, 5, 2)
) -> bytes:
    """The whole SSE body of a streamed chat answer, `[DONE]` included."""
    stream = ANSWER.stream()
    return b"".join(stream.delta(delta) for delta in deltas) + stream.end(reason, usage)


def chat_completion(
    deltas: Sequence[Delta], reason: FinishReason = FinishReason.STOP, usage: Usage = Usage(7, 5, 2)
) -> dict[str, Any]:
    """A whole `chat.completion`, as JSON decodes it."""
    loaded: dict[str, Any] = json.loads(json.dumps(ANSWER.completion(deltas, reason, usage)))
    return loaded


def sse(data: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    """Each event of an SSE body: its `event:` name (None without one) and its JSON data."""
    events = []
    for raw in data.decode().split("\n\n"):
        if not raw.strip():
            continue
        name = None
        payload = ""
        for line in raw.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                payload += line[6:]
        events.append((name, json.loads(payload)))
    return events
