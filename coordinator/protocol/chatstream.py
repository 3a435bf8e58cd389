"""A child's streamed chat answer, read back as typed events, for the adapters to re-encode.

The child answers every request as OpenAI chat-completion chunks (`data: {...}` events,
then `data: [DONE]`). The adapters for other APIs (`/v1/responses`, Anthropic's
`/v1/messages`) do not relay those bytes: they read them here, as they arrive, into
events that say what happened (some thinking, some text, a tool call began, more of its
arguments, the finish, the token counts, the end, a failure), and encode each event in
their own API's shape at once, so that a stream is never buffered whole.

Pure: bytes in, events out; no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Text and reasoning read back are the very events the child's engine yielded.
from coordinator.protocol.link import ReasoningDelta as ReasoningDelta
from coordinator.protocol.link import TextDelta as TextDelta

# A chunk is a few hundred bytes; an event this large (without its blank line) is not a
# chunk the child sends, so the stream is given up rather than buffered without end.
MAX_EVENT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ToolStart:
    """A tool call begins: `index` numbers the calls of one answer in order."""

    index: int
    call_id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolArguments:
    index: int
    delta: str


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str  # the chat finish_reason: stop, length, tool_calls, content_filter


@dataclass(frozen=True, slots=True)
class Usage:
    prompt: int
    completion: int
    reasoning: int


@dataclass(frozen=True, slots=True)
class Done:
    """`data: [DONE]`: the answer is whole."""


@dataclass(frozen=True, slots=True)
class Failed:
    """The stream cannot finish: an error event in it, or bytes that are not a chunk."""

    message: str
    status: int
    code: str | None


Event = ReasoningDelta | TextDelta | ToolStart | ToolArguments | Finish | Usage | Done | Failed


class ChunkReader:
    """Feed it the stream's bytes as they come; it returns the events they complete.

    Bytes may split an event anywhere: the rest waits for the next feed.
    """

    def __init__(self) -> None:
        self._pending = b""
        self._tools: set[int] = set()
        self._over = False

    def feed(self, data: bytes) -> list[Event]:
        if self._over:
            return []
        self._pending += data.replace(b"\r\n", b"\n")
        events: list[Event] = []
        while b"\n\n" in self._pending:
            raw, self._pending = self._pending.split(b"\n\n", 1)
            events.extend(self._event(raw))
            if self._over:
                return events
        if len(self._pending) > MAX_EVENT_BYTES:
            self._over = True
            events.append(Failed("the child sent an event too large to be a chunk", 502, "child_failed"))
        return events

    def _event(self, raw: bytes) -> list[Event]:
        data = b"\n".join(line[5:].lstrip(b" ") for line in raw.split(b"\n") if line.startswith(b"data:"))
        if not data:
            return []  # a comment or a keep-alive
        if data == b"[DONE]":
            self._over = True
            return [Done()]
        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self._over = True
            return [Failed("the child sent an event that is not a JSON object", 502, "child_failed")]
        error = payload.get("error")
        if isinstance(error, dict):
            self._over = True
            return [_failed(error)]
        return self._chunk(payload)

    def _chunk(self, chunk: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                events.extend(self._delta(delta))
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                events.append(Finish(reason))
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            events.append(usage_of(usage))
        return events

    def _delta(self, delta: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            events.append(ReasoningDelta(reasoning))
        content = delta.get("content")
        if isinstance(content, str) and content:
            events.append(TextDelta(content))
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if not isinstance(call, dict):
                continue
            index = call.get("index")
            index = index if isinstance(index, int) else len(self._tools)
            function = call.get("function")
            function = function if isinstance(function, dict) else {}
            if index not in self._tools:
                self._tools.add(index)
                call_id = call.get("id")
                name = function.get("name")
                events.append(
                    ToolStart(
                        index,
                        call_id if isinstance(call_id, str) else f"call_{index}",
                        name if isinstance(name, str) else "",
                    )
                )
            arguments = function.get("arguments")
            if isinstance(arguments, str) and arguments:
                events.append(ToolArguments(index, arguments))
        return events


def usage_of(usage: dict[str, Any]) -> Usage:
    """The counts of an OpenAI `usage` object; what is missing counts 0."""
    details = usage.get("completion_tokens_details")
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return Usage(_count(prompt), _count(completion), _count(reasoning))


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


# An error event carries OpenAI's error type, not a status: the status each type stands for.
_STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "rate_limit_error": 429,
}


def _failed(error: dict[str, Any]) -> Failed:
    message = error.get("message")
    code = error.get("code")
    kind = error.get("type")
    return Failed(
        message if isinstance(message, str) else "the answer failed",
        _STATUS_OF_TYPE.get(kind, 502) if isinstance(kind, str) else 502,
        code if isinstance(code, str) else None,
    )


def first_choice(completion: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first choice of a whole `chat.completion` and its message ({} where missing)."""
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    return choice, message if isinstance(message, dict) else {}
