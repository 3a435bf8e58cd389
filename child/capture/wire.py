"""The `GenerateContent` answer on the wire, read as it streams.

The body is one JSON array that grows while the model writes (`[[frame, frame, …]]`),
or an error (`[null, [code, message]]`). `FrameScanner` cuts each frame out as soon as
its closing bracket arrives, without waiting for the whole array; `AnswerDecoder` turns
frames into answer events: text, thinking, function calls, the finish and usage.

The format (../shared/research/aistudio-page.md): a frame's candidate is `$[0][0]`, its
content `[[parts], "model"]` and finish code `$[0][0][1]`; usage is `$[2]`; a part
holds text at 1, a function call at 10, `true` at 12 for thinking, a thought signature at
14 (on its own, or on a function call's part). A grounded answer
(Google Search, URL context) carries Gemini's grounding metadata at candidate `[8]`:
`[[chunk…], [support…], …]`, a chunk `[[url, title]]`, a support
`[[part, start, end, text], [chunk index…]]` with UTF-8 byte offsets into the answer's
text (a zero left out as null); each supported span becomes a `Citation` per source.

Thought signatures are read (`AnswerDecoder.signatures`, each with the call it came with)
but go nowhere: the OpenAI answer has no field for them, and the page could not take one
back, since each request is a new chat whose whole history is typed into the prompt box
as text; the page sends signatures only for turns of its own chat.
"""

from __future__ import annotations

import codecs
import re
import secrets
from collections.abc import Iterator
from typing import Any

import orjson

from child.engines.base import RPC_PERMISSION_DENIED, RPC_RESOURCE_EXHAUSTED
from coordinator.protocol.link import (
    AnswerError,
    AnswerEvent,
    Citation,
    Finish,
    FinishReason,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    Usage,
)

# Only these characters change the scanner's state; everything between them is skipped.
_STRUCTURE = re.compile(r'[\[\]{},"\\]')
_STRING_END = re.compile(r'["\\]')

FINISH_REASONS = {1: FinishReason.STOP, 2: FinishReason.LENGTH, 3: FinishReason.CONTENT_FILTER}
TEXT, FUNCTION_CALL, THOUGHT, SIGNATURE = 1, 10, 12, 14
USAGE_PROMPT, USAGE_CANDIDATES, USAGE_THOUGHTS = 0, 1, 9
GROUNDING = 8


class WireError(ValueError):
    """The body does not follow the format; the answer cannot be read from it."""


class FrameScanner:
    """Cuts complete elements out of a streamed `[[frame, …], rest…]` array.

    `feed` takes the body's bytes as they arrive and returns what completed: ("frame", f)
    for each element of `$[0]`, ("rest", value) for each later top-level element.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._text = ""
        self._position = 0  # scanned up to here
        self._depth = 0
        self._in_string = False
        self._top_index = 0
        self._start = -1  # where the element being collected begins

    def feed(self, data: bytes) -> list[tuple[str, Any]]:
        self._text += self._decoder.decode(data)
        found: list[tuple[str, Any]] = []
        text, position = self._text, self._position
        while position < len(text):
            if self._in_string:
                match = _STRING_END.search(text, position)
                if match is None:
                    position = len(text)
                    break
                if match.group() == "\\":
                    if match.end() >= len(text):
                        position = match.start()  # the escaped character has not arrived
                        break
                    position = match.end() + 1
                    continue
                self._in_string = False
                position = match.end()
                continue
            match = _STRUCTURE.search(text, position)
            if match is None:
                position = len(text)
                break
            char, index = match.group(), match.start()
            position = match.end()
            if char == '"':
                self._in_string = True
            elif char in "[{":
                self._depth += 1
                if self._start < 0 and self._collecting_at(self._depth):
                    self._start = index
            elif char in "]}":
                if self._start >= 0 and self._collecting_at(self._depth):
                    found.append(self._element(text[self._start : index + 1]))
                    self._start = -1
                self._depth -= 1
                if self._depth < 0:
                    raise WireError("the body closes more brackets than it opens")
            elif char == "," and self._depth == 1:
                self._top_index += 1
        # Keep only what an element still being collected needs.
        keep = self._start if self._start >= 0 else position
        self._text = text[keep:]
        self._position = position - keep
        if self._start >= 0:
            self._start = 0
        return found

    def _collecting_at(self, depth: int) -> bool:
        # Frames are the elements of $[0] (depth 3); later top-level elements sit at depth 2.
        return depth == 3 if self._top_index == 0 else depth == 2

    def _element(self, raw: str) -> tuple[str, Any]:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise WireError(f"a frame is not JSON: {exc}") from None
        return ("frame" if self._top_index == 0 else "rest", value)


class AnswerDecoder:
    """Frames in, answer events out; `close()` says how the answer ended."""

    def __init__(self) -> None:
        self.frames = 0
        self.usage: Usage | None = None
        self.finish_code: int | None = None
        self.tool_calls = 0
        self.error: AnswerError | None = None
        # (the call's id or None, the signature): read, counted in the log, never sent on.
        self.signatures: list[tuple[str | None, str]] = []
        self._text = b""  # the answer's text so far, as the grounding's offsets count it
        self._cited: set[tuple[str, int, int]] = set()

    def frame(self, frame: Any) -> Iterator[AnswerEvent]:
        self.frames += 1
        usage = _at(frame, 2)
        if isinstance(usage, list):
            self.usage = _usage(usage)
        candidate = _at(frame, 0, 0)
        finish = _at(candidate, 1)
        if isinstance(finish, int) and not isinstance(finish, bool):
            self.finish_code = finish
        parts = _at(candidate, 0, 0)
        for part in parts if isinstance(parts, list) else ():
            event = self._part(part)
            if event is not None:
                if isinstance(event, TextDelta):
                    self._text += event.text.encode()
                yield event
        yield from self._citations(_at(candidate, GROUNDING))

    def _citations(self, grounding: Any) -> Iterator[Citation]:
        """The sources of a grounded answer, each once per span, in character offsets."""
        chunks, supports = _at(grounding, 0), _at(grounding, 1)
        if not isinstance(chunks, list) or not isinstance(supports, list):
            return
        for support in supports:
            segment, indices = _at(support, 0), _at(support, 1)
            start, end = _offset(_at(segment, 1)), _offset(_at(segment, 2))
            if not isinstance(indices, list) or end <= start:
                continue
            first, last = (len(self._text[:offset].decode(errors="ignore")) for offset in (start, end))
            for index in indices:
                web = _at(chunks, index, 0) if isinstance(index, int) else None
                url, title = _at(web, 0), _at(web, 1)
                if not isinstance(url, str) or (url, first, last) in self._cited:
                    continue
                self._cited.add((url, first, last))
                yield Citation(url=url, title=title if isinstance(title, str) else url, start=first, end=last)

    def rest(self, value: Any) -> None:
        """A top-level element after the frames: `[code, message]` is an error."""
        if isinstance(value, list) and len(value) >= 2 and isinstance(value[0], int):
            self.error = site_error(value[0], str(value[1]))

    def close(self, *, complete: bool) -> AnswerEvent:
        """The last event: the error, the finish, or (a body cut short) an error saying so."""
        if self.error is not None:
            return self.error
        if self.finish_code is None and not complete:
            return AnswerError("the answer's stream ended before the model finished", 502, "answer_cut")
        reason = FINISH_REASONS.get(self.finish_code or 1, FinishReason.CONTENT_FILTER)
        if reason is FinishReason.STOP and self.tool_calls:
            reason = FinishReason.TOOL_CALLS
        return Finish(reason=reason, usage=self.usage)

    def _part(self, part: Any) -> AnswerEvent | None:
        if not isinstance(part, list):
            return None
        call = _at(part, FUNCTION_CALL)
        signature = _at(part, SIGNATURE)
        if isinstance(call, list) and call and isinstance(call[0], str):
            self.tool_calls += 1
            arguments = _struct(_at(call, 1))
            call_id = _at(call, 2)
            event = ToolCall(
                id=call_id if isinstance(call_id, str) and call_id else f"call_{secrets.token_hex(12)}",
                name=call[0],
                arguments=orjson.dumps(arguments).decode(),
            )
            if isinstance(signature, str) and signature:
                self.signatures.append((event.id, signature))
            return event
        if isinstance(signature, str) and signature:
            self.signatures.append((None, signature))
        text = _at(part, TEXT)
        if not isinstance(text, str) or not text:
            return None  # a thought signature, or an empty part
        return ReasoningDelta(text) if _at(part, THOUGHT) is True else TextDelta(text)


def site_error(code: int, message: str) -> AnswerError:
    """The site's refusal as the error the client gets (the model is added by the driver)."""
    if code == RPC_RESOURCE_EXHAUSTED:
        return AnswerError(f"the site says: {message[:300]}", 429, "quota_exhausted")
    if code == RPC_PERMISSION_DENIED:
        return AnswerError(f"the site says: {message[:300]}", 403, "permission_denied")
    return AnswerError(f"the site answered error {code}: {message[:300]}", 502, "site_error")


def status_error(status: int) -> AnswerError:
    """An answer refused by HTTP status alone, its body unreadable."""
    if status == 429:
        return AnswerError("the site answered 429 (rate limit or quota)", 429, "quota_exhausted")
    if status == 403:
        return AnswerError("the site answered 403: permission denied", 403, "permission_denied")
    return AnswerError(f"the site answered HTTP {status}", 502, "site_error")


def _at(value: Any, *path: int) -> Any:
    for index in path:
        if not isinstance(value, list) or index >= len(value):
            return None
        value = value[index]
    return value


def _offset(value: Any) -> int:
    # json+protobuf leaves a zero out: a missing offset is 0.
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _usage(raw: list[Any]) -> Usage:
    def count(index: int) -> int:
        value = _at(raw, index)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    thoughts = count(USAGE_THOUGHTS)
    return Usage(
        prompt=count(USAGE_PROMPT), completion=count(USAGE_CANDIDATES) + thoughts, reasoning=thoughts
    )


def _struct(raw: Any) -> dict[str, Any]:
    """A protobuf Struct in JSON+protobuf (`[[[key, value], …]]`) as a plain object."""
    fields = _at(raw, 0)
    result: dict[str, Any] = {}
    for entry in fields if isinstance(fields, list) else ():
        if isinstance(entry, list) and len(entry) >= 2 and isinstance(entry[0], str):
            result[entry[0]] = _value(entry[1])
    return result


def _value(raw: Any) -> Any:
    # A Value's kind is the position of its one field, so the array's length says the type.
    if not isinstance(raw, list) or not raw:
        return None
    kind = len(raw)
    if kind == 2:
        return raw[1]
    if kind == 3:
        return raw[2]
    if kind == 4:
        return bool(raw[3])
    if kind == 5:
        return _struct(raw[4])
    if kind == 6:
        items = _at(raw, 5, 0)
        return [_value(item) for item in items] if isinstance(items, list) else []
    return None
