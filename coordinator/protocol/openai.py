"""The OpenAI wire format that the coordinator and its children both speak.

Error bodies, server-sent-event framing, the validation of a chat request and the
building of an answer (a whole `chat.completion`, or its stream of chunks) from the
engine's answer events live here, in one place, so that both processes answer a client
in exactly the same shape. This module is pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from coordinator.protocol import fields
from coordinator.protocol.errors import InvalidRequest as InvalidRequest
from coordinator.protocol.errors import OpenAIError as OpenAIError
from coordinator.protocol.errors import OpenAIErrorKind as OpenAIErrorKind
from coordinator.protocol.errors import error_body as error_body
from coordinator.protocol.errors import error_type_for as error_type_for
from coordinator.protocol.link import (
    USAGE_NOTE,
    Citation,
    FinishReason,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    Usage,
)
from coordinator.protocol.request import (
    FILE_PARTS,
    MAX_ATTACHMENTS,
    TEXT_PARTS,
    Attachment,
    ChatOptions,
    attachments,
    check_message_fields,
    parse_options,
)

SSE_DONE = b"data: [DONE]\n\n"

MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
# The limits of a request's sampling settings, checked here and stated in the OpenAPI description.
NUMBER_RANGES = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0)}
WHOLE_NUMBERS = ("max_tokens", "max_completion_tokens")  # each at least 1
MAX_STOP = 4
# Fields nothing here honours yet, with when a value asks for something and why it cannot be
# had: such a request is refused with 400 naming the field, never answered as if it were
# not there. A field sent with its "off" value (`tools: []`, `n: 1`, `logprobs: false`)
# asks for nothing and passes.
NOT_HONOURED: dict[str, tuple[Callable[[Any], bool], str]] = {
    # The coordinator fans n > 1 out over n children (`parse_chat_request(fan_out=True)`).
    "n": (lambda v: v is not None and v != 1, "a child answers one choice per request"),
    "logprobs": (lambda v: v not in (None, False), "the site gives no token log probabilities"),
    "top_logprobs": (lambda v: v not in (None, 0), "the site gives no token log probabilities"),
    "audio": (lambda v: v is not None, "answers are text only"),
    "modalities": (lambda v: v not in (None, ["text"]), "answers are text only"),
    "logit_bias": (bool, "the site takes no token biases"),
    "seed": (lambda v: v is not None, "the site takes no seed"),
    "presence_penalty": (lambda v: v not in (None, 0), "the site has no presence penalty"),
    "frequency_penalty": (lambda v: v not in (None, 0), "the site has no frequency penalty"),
    "prediction": (lambda v: v is not None, "the site takes no predicted output"),
}
# A surrogate can only reach a decoded string as a \u escape (the body must be UTF-8):
# where the body has none, no string needs walking.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def sse_event(payload: dict[str, Any]) -> bytes:
    """One `data:` event; compact JSON so a chunk is as small as OpenAI's."""
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def usage_note(usage: dict[str, Any]) -> bytes:
    """The counts of a stream whose client did not ask for them, as an SSE comment (`USAGE_NOTE`)."""
    return USAGE_NOTE + json.dumps({"usage": usage}, separators=(",", ":")).encode() + b"\n\n"


def without_usage_note(chunk: bytes) -> bytes:
    """`chunk` without the usage note, which is for the ledger, not the client. A note split
    between two reads is left as it is: a comment, which SSE readers skip."""
    at = chunk.find(USAGE_NOTE)
    if at < 0 or (at > 0 and chunk[at - 1] != 0x0A):
        return chunk
    end = chunk.find(b"\n\n", at)
    return chunk if end < 0 else chunk[:at] + chunk[end + 2 :]


def sse_error(message: str, *, status: int, code: str | None = None) -> bytes:
    """The event that ends a stream which cannot finish; no `[DONE]` follows it."""
    return sse_event(error_body(message, status=status, code=code))


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What a router needs to know of a chat request; the body itself travels untouched."""

    body: dict[str, Any]
    model: str | None
    stream: bool
    include_usage: bool
    options: ChatOptions = field(default_factory=ChatOptions)
    attachments: tuple[Attachment, ...] = ()
    n: int = 1  # choices asked for; more than 1 only where the parser was told to fan out


def parse_chat_request(raw: bytes, *, fan_out: bool = False) -> ChatRequest:
    """Check a `/v1/chat/completions` body the way OpenAI does, or raise InvalidRequest.

    A body accepted here is safe for every reader of it on both sides: each string is
    valid Unicode, each content part is one we can read, and the prompt has text.
    `fan_out`: n > 1 is served (the coordinator's, which sends n requests of one choice).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(
            "The request body is not UTF-8. Send a JSON object with 'model' and 'messages'.",
            code="invalid_json",
        ) from None
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise InvalidRequest(
            f"The request body is not valid JSON ({exc}). Send a JSON object with 'model' and 'messages'.",
            code="invalid_json",
        ) from None
    except RecursionError:
        # The parser recurses per level: a body of 100,000 brackets is refused, not a crash.
        raise InvalidRequest(
            "The request body is nested too deeply to be a chat request.", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest(
            f"The request body must be a JSON object, not {_json_kind(body)}.", code="invalid_json"
        )

    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest(
            "'messages' is required: send a list of {role, content} objects.", param="messages"
        )
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(
            "'messages' must be a non-empty list of {role, content} objects.", param="messages"
        )
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{param} must be an object with 'role' and 'content'.", param=param)
        role = message.get("role")
        if role is None:
            raise InvalidRequest(f"{param} has no 'role'; use one of {_roles()}.", param=f"{param}.role")
        if not isinstance(role, str) or role not in MESSAGE_ROLES:
            raise InvalidRequest(f"{param}.role is {role!r}; use one of {_roles()}.", param=f"{param}.role")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise InvalidRequest(
                f"{param}.content must be a string or a list of content parts.", param=f"{param}.content"
            )
        if isinstance(content, list):
            _check_parts(content, f"{param}.content")
        check_message_fields(message, param)

    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise InvalidRequest("'model' must be a non-empty string.", param="model")
    if model is not None:
        model = model.removeprefix("models/")  # the page's own spelling of a model id

    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidRequest(f"'stream' must be true or false, not {_json_kind(stream)}.", param="stream")

    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequest("'stream_options' must be an object.", param="stream_options")
    include_usage = bool(options and options.get("include_usage"))

    _check_run_settings(body)
    if _SURROGATE_ESCAPE.search(raw):
        _check_unicode(body)
    _check_honoured(body, fan_out)
    options = parse_options(body)
    files = attachments(messages)
    if len(files) > MAX_ATTACHMENTS:
        raise InvalidRequest(
            f"The messages carry {len(files)} files; at most {MAX_ATTACHMENTS} go with one prompt.",
            param="messages",
        )
    # isspace() stops at the first character that is not a space; strip() would copy the text.
    if not files and not any(
        ((said := message_text(message)) and not said.isspace()) or message.get("tool_calls")
        for message in messages
    ):
        raise InvalidRequest(
            "The prompt is empty: no message has any text. Send at least one message with text.",
            param="messages",
        )
    return ChatRequest(
        body=body,
        model=model,
        stream=stream,
        include_usage=include_usage,
        options=options,
        attachments=files,
        n=body.get("n") or 1,
    )


def _check_parts(parts: list[Any], param: str) -> None:
    for index, part in enumerate(parts):
        where = f"{param}[{index}]"
        if not isinstance(part, dict):
            raise InvalidRequest(f"{where} must be an object with a 'type'.", param=where)
        kind = part.get("type")
        if kind in FILE_PARTS:
            continue  # read (and checked) by attachments()
        text_field = TEXT_PARTS.get(kind) if isinstance(kind, str) else None
        if text_field is None:
            raise InvalidRequest(
                f"{where}.type is {kind!r}; use one of {', '.join([*TEXT_PARTS, *sorted(FILE_PARTS)])}.",
                param=f"{where}.type",
            )
        if not isinstance(part.get(text_field), str):
            raise InvalidRequest(f"{where}.{text_field} must be a string.", param=f"{where}.{text_field}")


def _check_unicode(body: dict[str, Any]) -> None:
    """Refuse a lone surrogate in any string (key or value): no reader could encode it again."""
    pending: list[tuple[str, Any]] = [("", body)]
    while pending:  # a loop, not recursion: the body may be nested as deep as the parser allows
        path, value = pending.pop()
        if isinstance(value, str):
            if not _encodable(value):
                raise InvalidRequest(
                    f"{path or 'the body'} has a lone surrogate (an unpaired \\ud800-\\udfff escape), "
                    "which is not a character; send valid Unicode.",
                    param=path or None,
                )
        elif isinstance(value, dict):
            for key, item in value.items():
                name = f"{path}.{key}" if path else key
                if not _encodable(key):
                    raise InvalidRequest(
                        f"a key in {path or 'the body'} has a lone surrogate.", param=path or None
                    )
                pending.append((name, item))
        elif isinstance(value, list):
            pending.extend((f"{path}[{index}]", item) for index, item in enumerate(value))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class RunSettings:
    """The sampling settings a page can apply; None where the request left them out."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()


def run_settings(body: dict[str, Any]) -> RunSettings:
    """The settings of a body that `parse_chat_request` accepted."""
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    stop = body.get("stop")
    return RunSettings(
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        max_tokens=max_tokens,
        stop=(stop,) if isinstance(stop, str) else tuple(stop or ()),
    )


def _check_run_settings(body: dict[str, Any]) -> None:
    for name, (low, high) in NUMBER_RANGES.items():
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise InvalidRequest(
                f"'{name}' must be a number from {low:g} to {high:g}.", param=name, code=fields.INVALID_VALUE
            )
    for name in WHOLE_NUMBERS:
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InvalidRequest(
                f"'{name}' must be a whole number of at least 1.", param=name, code=fields.INVALID_VALUE
            )
    stop = body.get("stop")
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or len(stop) > MAX_STOP or not all(isinstance(s, str) and s for s in stop):
        raise InvalidRequest(
            f"'stop' must be a string or a list of up to {MAX_STOP} non-empty strings.",
            param="stop",
            code=fields.INVALID_VALUE,
        )


def _check_honoured(body: dict[str, Any], fan_out: bool) -> None:
    # Values first: a malformed value is refused as such even in a field not served.
    problem = fields.check_values(body)
    if problem is not None:
        raise InvalidRequest(problem.message, param=problem.param, code=problem.code)
    for name, (asks, why) in NOT_HONOURED.items():
        if name in body and asks(body[name]) and not (fan_out and name == "n"):
            raise InvalidRequest(
                f"'{name}' is not supported: {why}.", param=name, code="unsupported_parameter"
            )
    problem = fields.not_offered(body)
    if problem is not None:
        raise InvalidRequest(problem.message, param=problem.param, code=problem.code)


def message_text(message: dict[str, Any]) -> str:
    """The text of a message, whether its content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # Checked by parse_chat_request, yet never trusted here: a child must not fail on a
        # body after it has taken its turn. Parts are paragraphs: "one two" + "three" must
        # not become "one twothree".
        return "\n".join(
            text
            for part in content
            if isinstance(part, dict)
            and part.get("type") == "text"
            and isinstance(text := part.get("text"), str)
        )
    return ""


def _roles() -> str:
    return ", ".join(sorted(MESSAGE_ROLES))


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    return "an object"


# -- answers -----------------------------------------------------------------------------

# What may arrive between the start of an answer and its Finish.
Delta = TextDelta | ReasoningDelta | ToolCall | Citation


@dataclass(frozen=True, slots=True)
class Answer:
    """Builds the OpenAI objects of one completion from its answer events."""

    request_id: str
    model: str
    created: int
    include_usage: bool = False

    @property
    def id(self) -> str:
        return f"chatcmpl-{self.request_id}"

    @staticmethod
    def usage(usage: Usage) -> dict[str, Any]:
        return {
            "prompt_tokens": usage.prompt,
            "completion_tokens": usage.completion,
            "total_tokens": usage.prompt + usage.completion,
            "completion_tokens_details": {"reasoning_tokens": usage.reasoning},
        }

    def completion(self, events: Iterable[Delta], reason: FinishReason, usage: Usage) -> dict[str, Any]:
        """The whole `chat.completion` body of a non-streamed answer."""
        text: list[str] = []
        reasoning: list[str] = []
        tool_calls: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for event in events:
            if isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, ReasoningDelta):
                reasoning.append(event.text)
            elif isinstance(event, Citation):
                annotations.append(_annotation(event))
            else:
                tool_calls.append(_tool_call(event))
        # OpenAI sends null content with tool calls and no text; refusal is always present.
        content = "".join(text) if text or not tool_calls else None
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if reasoning:
            message["reasoning_content"] = "".join(reasoning)
        if tool_calls:
            message["tool_calls"] = tool_calls
        if annotations:
            message["annotations"] = annotations
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": reason.value, "logprobs": None}],
            "usage": self.usage(usage),
        }

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return self._chunk_event(choices=[choice])

    def usage_chunk(self, usage: Usage) -> bytes:
        """The last chunk when the client asked for `stream_options.include_usage`."""
        return self._chunk_event(choices=[], usage=self.usage(usage))

    def _chunk_event(self, **fields: Any) -> bytes:
        return sse_event(
            {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model}
            | fields
        )

    def stream(self) -> AnswerStream:
        return AnswerStream(self)


class AnswerStream:
    """The SSE chunks of one streamed answer, event by event.

    The role rides on the first chunk, as OpenAI sends it; tool calls are numbered
    (`index`) in the order they come.
    """

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self._started = False
        self._tool_calls = 0

    def delta(self, event: Delta) -> bytes:
        if isinstance(event, TextDelta):
            return self._chunk({"content": event.text})
        if isinstance(event, ReasoningDelta):
            return self._chunk({"reasoning_content": event.text})
        if isinstance(event, Citation):
            # A source as soon as its text is out: a delta field of its own, as OpenAI's
            # search models stream `annotations`.
            return self._chunk({"annotations": [_annotation(event)]})
        index = self._tool_calls
        self._tool_calls += 1
        # As OpenAI: a message that opens with a tool call has null content, not "".
        return self._chunk({"tool_calls": [{"index": index, **_tool_call(event)}]}, content=None)

    def end(self, reason: FinishReason, usage: Usage) -> bytes:
        """The finish chunk, the usage chunk if asked for, and `[DONE]`."""
        # An empty answer still opens with the role, as OpenAI's does.
        ending = b"" if self._started else self._chunk({})
        ending += self.answer.chunk({}, finish_reason=reason.value)
        if self.answer.include_usage:
            ending += self.answer.usage_chunk(usage)
        else:
            ending += usage_note(self.answer.usage(usage))
        return ending + SSE_DONE

    def _chunk(self, delta: dict[str, Any], content: str | None = "") -> bytes:
        if not self._started:
            self._started = True
            delta = {"role": "assistant", "content": content, **delta}
        return self.answer.chunk(delta)


def _annotation(citation: Citation) -> dict[str, Any]:
    """OpenAI's `url_citation` annotation: start and end are character offsets in the content."""
    return {
        "type": "url_citation",
        "url_citation": {
            "start_index": citation.start,
            "end_index": citation.end,
            "title": citation.title,
            "url": citation.url,
        },
    }


def _tool_call(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
