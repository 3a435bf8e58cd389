"""OpenAI's Responses API (`POST /v1/responses`) as a translation of chat completions.

A `CreateResponse` body becomes a chat-completions body that runs through the very same
path as `/v1/chat/completions`; the child's `chat.completion` (or its chunks) becomes a
`Response` object (or the Responses event stream). Every field is translated or refused
with 400 naming it. The coordinator keeps no state, so what needs stored responses
(`previous_response_id`, `store: true`, `conversation`, `item_reference`, `background`)
is refused: send the whole conversation as `input` items.

Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coordinator.protocol import adapting as check
from coordinator.protocol import chatstream as cs

STATELESS = "the coordinator keeps no responses: send the whole conversation as 'input' items"


@dataclass(frozen=True, slots=True)
class Translated:
    """A Responses request as a chat body, and what its Response object echoes back."""

    chat: dict[str, Any]
    echo: dict[str, Any]
    stream: bool
    include_encrypted: bool = False


# -- the request -------------------------------------------------------------------------

_LABELS = frozenset({"user", "safety_identifier", "prompt_cache_key", "prompt_cache_retention"})
# Fields accepted when their value asks for nothing this route lacks.
_ASKS_NOTHING: dict[str, tuple[Callable[[Any], bool], str]] = {
    "previous_response_id": (lambda v: v is None, STATELESS),
    "conversation": (lambda v: v is None, STATELESS),
    "store": (lambda v: v in (None, False), STATELESS + ", with store: false"),
    "background": (lambda v: v in (None, False), "answers are given while the client waits"),
    "prompt": (lambda v: v is None, "stored prompt templates are not kept here"),
    "truncation": (lambda v: v in (None, "disabled"), "the conversation is never truncated here"),
    "service_tier": (lambda v: v in (None, "auto", "default"), "there is one tier"),
    "top_logprobs": (lambda v: v in (None, 0), "the site gives no token log probabilities"),
    "context_management": (lambda v: v is None, "the context is not managed here"),
    "moderation": (lambda v: v is None, "no moderation runs here"),
    # Caps calls of built-in tools, of which there are none here: nothing to cap.
    "max_tool_calls": (lambda v: v is None or (isinstance(v, int) and v >= 0), "a whole number"),
}
_KNOWN = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "reasoning",
        "text", "max_output_tokens", "temperature", "top_p", "stream", "stream_options", "metadata",
        "include", *_LABELS, *_ASKS_NOTHING,
    }
)  # fmt: skip
_INCLUDE = frozenset({"reasoning.encrypted_content"})
_TEXT_PARTS = {"input_text": "text", "output_text": "text"}
_ROLES = frozenset({"user", "assistant", "system", "developer"})


def translate(raw: bytes) -> Translated:
    """A `CreateResponse` body as a chat-completions body, or InvalidRequest naming the field."""
    body = check.load_object(raw, "a JSON object with 'model' and 'input'")
    for name in body:
        if name not in _KNOWN:
            raise check.unknown(name, _KNOWN)
    for name, (fine, why) in _ASKS_NOTHING.items():
        if name in body and not fine(body[name]):
            raise check.refuse(name, why)
    chat: dict[str, Any] = {}
    echo: dict[str, Any] = {}
    model = body.get("model")
    if model is not None:
        chat["model"] = check.string(model, "model", empty=False)
    echo["model"] = model or ""
    instructions = body.get("instructions")
    messages: list[dict[str, Any]] = []
    if instructions is not None:
        messages.append({"role": "system", "content": check.string(instructions, "instructions")})
    echo["instructions"] = instructions
    if "input" not in body:
        raise check.invalid("input", "is required: a string, or a list of input items.")
    messages.extend(_input(body["input"]))
    chat["messages"] = messages
    _tools(body, chat, echo)
    _sampling(body, chat, echo)
    _reasoning(body, chat, echo)
    _text(body, chat, echo)
    stream = body.get("stream")
    stream = False if stream is None else check.boolean(stream, "stream")
    options = body.get("stream_options")
    if options is not None:
        options = check.obj(options, "stream_options")
        check.only_keys(options, frozenset({"include_obfuscation"}), "stream_options")
        # Obfuscation pads events against length side channels; these events are never padded.
        if options.get("include_obfuscation") not in (None, False):
            raise check.refuse("stream_options.include_obfuscation", "no padding is sent")
    chat["stream"] = stream
    if stream:
        chat["stream_options"] = {"include_usage": True}
    metadata = body.get("metadata")
    echo["metadata"] = {} if metadata is None else check.labels(metadata, "metadata")
    if metadata:
        chat["metadata"] = metadata
    user = body.get("user")
    if user is not None:
        chat["user"] = echo["user"] = check.string(user, "user")
    include = body.get("include")
    wanted = [] if include is None else check.array(include, "include", 16)
    for index, value in enumerate(wanted):
        if not isinstance(value, str) or value not in _INCLUDE:
            raise check.refuse(f"include[{index}]", f"{value!r} cannot be included here")
    return Translated(chat, echo, stream, include_encrypted="reasoning.encrypted_content" in wanted)


def _input(value: object) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    items = check.array(value, "input")
    messages: list[dict[str, Any]] = []
    reasoning: list[str] = []  # thinking handed back, for the assistant turn that follows it
    for index, item in enumerate(items):
        param = f"input[{index}]"
        item = check.obj(item, param)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            message = _message(item, param)
            if message["role"] == "assistant" and reasoning:
                message["reasoning_content"] = "\n\n".join(reasoning)
                reasoning.clear()
            messages.append(message)
        elif kind == "function_call":
            call = _function_call(item, param)
            last = messages[-1] if messages else None
            if last is None or last["role"] != "assistant" or reasoning:
                last = {"role": "assistant", "content": None}
                if reasoning:
                    last["reasoning_content"] = "\n\n".join(reasoning)
                    reasoning.clear()
                messages.append(last)
            last.setdefault("tool_calls", []).append(call)
        elif kind == "function_call_output":
            messages.append(_function_output(item, param))
        elif kind == "reasoning":
            reasoning.append(_reasoning_item(item, param))
        elif kind == "item_reference":
            raise check.refuse(f"{param}.type", STATELESS)
        else:
            raise check.refuse(
                f"{param}.type",
                f"{kind!r} items are not read here; send message, function_call, function_call_output "
                "or reasoning items",
            )
    if not messages:
        raise check.invalid("input", "has no message: send at least one.")
    return messages


def _message(item: dict[str, Any], param: str) -> dict[str, Any]:
    check.only_keys(item, frozenset({"type", "role", "content", "id", "status", "phase"}), param)
    role = item.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        raise check.invalid(f"{param}.role", f"is {role!r}; use one of {', '.join(sorted(_ROLES))}.")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(check.array(content, f"{param}.content")):
        parts.append(_part(check.obj(part, f"{param}.content[{index}]"), f"{param}.content[{index}]", role))
    return {"role": role, "content": parts}


def _part(part: dict[str, Any], param: str, role: str) -> dict[str, Any]:
    kind = part.get("type")
    if isinstance(kind, str) and kind in _TEXT_PARTS:
        check.only_keys(part, frozenset({"type", "text", "annotations", "logprobs"}), param)
        return {"type": "text", "text": check.string(part.get("text"), f"{param}.text")}
    if kind == "refusal":
        check.only_keys(part, frozenset({"type", "refusal"}), param)
        return {"type": "refusal", "refusal": check.string(part.get("refusal"), f"{param}.refusal")}
    if kind == "input_image":
        check.only_keys(part, frozenset({"type", "image_url", "detail", "file_id"}), param)
        if part.get("file_id") is not None:
            raise check.refuse(f"{param}.file_id", "no files are stored here: send the image as image_url")
        if role != "user":
            raise check.refuse(param, "images are read in user messages only")
        url = check.string(part.get("image_url"), f"{param}.image_url", empty=False)
        image: dict[str, Any] = {"url": url}
        if part.get("detail") is not None:
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise check.refuse(f"{param}.type", f"{kind!r} parts are not read here; send input_text or input_image")


def _function_call(item: dict[str, Any], param: str) -> dict[str, Any]:
    check.only_keys(item, frozenset({"type", "call_id", "name", "arguments", "id", "status"}), param)
    return {
        "id": check.string(item.get("call_id"), f"{param}.call_id", empty=False),
        "type": "function",
        "function": {
            "name": check.string(item.get("name"), f"{param}.name", empty=False),
            "arguments": check.string(item.get("arguments"), f"{param}.arguments"),
        },
    }


def _function_output(item: dict[str, Any], param: str) -> dict[str, Any]:
    check.only_keys(item, frozenset({"type", "call_id", "output", "id", "status"}), param)
    call_id = check.string(item.get("call_id"), f"{param}.call_id", empty=False)
    output = item.get("output")
    if isinstance(output, str):
        return {"role": "tool", "tool_call_id": call_id, "content": output}
    parts = []
    for index, part in enumerate(check.array(output, f"{param}.output")):
        where = f"{param}.output[{index}]"
        part = check.obj(part, where)
        if part.get("type") != "input_text":
            raise check.refuse(f"{where}.type", "a function's output is read as text: send input_text parts")
        parts.append({"type": "text", "text": check.string(part.get("text"), f"{where}.text")})
    return {"role": "tool", "tool_call_id": call_id, "content": parts}


def _reasoning_item(item: dict[str, Any], param: str) -> str:
    """The text of thinking handed back: its summary (the only reasoning this route sends)."""
    keys = frozenset({"type", "id", "summary", "content", "encrypted_content", "status"})
    check.only_keys(item, keys, param)
    texts = []
    for key in ("summary", "content"):
        for index, part in enumerate(check.array(item.get(key) or [], f"{param}.{key}")):
            part = check.obj(part, f"{param}.{key}[{index}]")
            texts.append(check.string(part.get("text"), f"{param}.{key}[{index}].text"))
    return "\n\n".join(texts)


def _tools(body: dict[str, Any], chat: dict[str, Any], echo: dict[str, Any]) -> None:
    tools = body.get("tools")
    echo["tools"] = []
    if tools:
        chat["tools"] = [
            _tool(check.obj(tool, f"tools[{index}]"), f"tools[{index}]")
            for index, tool in enumerate(check.array(tools, "tools", check.MAX_TOOLS))
        ]
        # The Response lists each tool whole, with null for what the request left out.
        echo["tools"] = [
            {
                "type": "function",
                **{k: tool["function"].get(k) for k in ("name", "description", "parameters", "strict")},
            }
            for tool in chat["tools"]
        ]
    choice = body.get("tool_choice")
    echo["tool_choice"] = "auto" if choice is None else choice
    if choice is None:
        pass
    elif choice in ("none", "auto", "required"):
        chat["tool_choice"] = choice
    elif isinstance(choice, dict) and choice.get("type") == "function":
        check.only_keys(choice, frozenset({"type", "name"}), "tool_choice")
        name = check.string(choice.get("name"), "tool_choice.name", empty=False)
        chat["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise check.refuse("tool_choice", "use none, auto, required or {type: function, name}")
    parallel = body.get("parallel_tool_calls")
    echo["parallel_tool_calls"] = True if parallel is None else parallel
    if parallel is not None:
        chat["parallel_tool_calls"] = check.boolean(parallel, "parallel_tool_calls")


def _tool(tool: dict[str, Any], param: str) -> dict[str, Any]:
    if tool.get("type") != "function":
        kind = tool.get("type")
        raise check.refuse(f"{param}.type", f"{kind!r} tools do not exist here; send function tools")
    check.only_keys(tool, frozenset({"type", "name", "description", "parameters", "strict"}), param)
    function: dict[str, Any] = {"name": check.string(tool.get("name"), f"{param}.name", empty=False)}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}


def _sampling(body: dict[str, Any], chat: dict[str, Any], echo: dict[str, Any]) -> None:
    for name, high in (("temperature", 2.0), ("top_p", 1.0)):
        value = body.get(name)
        echo[name] = 1.0 if value is None else check.number(value, name, 0.0, high)
        if value is not None:
            chat[name] = value
    limit = body.get("max_output_tokens")
    echo["max_output_tokens"] = limit
    if limit is not None:
        chat["max_completion_tokens"] = check.whole(limit, "max_output_tokens")


def _reasoning(body: dict[str, Any], chat: dict[str, Any], echo: dict[str, Any]) -> None:
    reasoning = body.get("reasoning")
    echo["reasoning"] = {"effort": None, "summary": None}
    if reasoning is None:
        return
    reasoning = check.obj(reasoning, "reasoning")
    # The summary is the thinking the site shows, whatever length is asked for.
    check.only_keys(reasoning, frozenset({"effort", "summary", "generate_summary"}), "reasoning")
    effort = reasoning.get("effort")
    if effort is not None:
        chat["reasoning_effort"] = check.string(effort, "reasoning.effort", empty=False)
    echo["reasoning"] = {"effort": effort, "summary": reasoning.get("summary")}


def _text(body: dict[str, Any], chat: dict[str, Any], echo: dict[str, Any]) -> None:
    text = body.get("text")
    echo["text"] = {"format": {"type": "text"}}
    if text is None:
        return
    text = check.obj(text, "text")
    check.only_keys(text, frozenset({"format", "verbosity"}), "text")
    if text.get("verbosity") not in (None, "medium"):
        raise check.refuse("text.verbosity", "the page has no verbosity setting")
    form = text.get("format")
    if form is None:
        return
    form = check.obj(form, "text.format")
    kind = form.get("type")
    if kind == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        check.only_keys(form, frozenset({"type", "name", "schema", "strict", "description"}), "text.format")
        schema: dict[str, Any] = {"name": check.string(form.get("name"), "text.format.name", empty=False)}
        schema["schema"] = check.obj(form.get("schema"), "text.format.schema")
        for key in ("strict", "description"):
            if form.get(key) is not None:
                schema[key] = form[key]
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif kind != "text":
        raise check.refuse("text.format.type", "use text, json_object or json_schema")
    echo["text"] = {"format": form}


# -- the answer --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    """What names one response: its id, when it began, and the request's echo."""

    request_id: str
    created_at: int
    translated: Translated

    @property
    def id(self) -> str:
        return f"resp_{self.request_id}"

    def response(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: cs.Usage | None,
        *,
        finish: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        incomplete = _INCOMPLETE.get(finish or "")
        if incomplete is not None and status == "completed":
            status = "incomplete"
        response = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": error,
            "incomplete_details": {"reason": incomplete} if status == "incomplete" else None,
            **self.translated.echo,
            "output": output,
            "previous_response_id": None,
            "store": False,
            "truncation": "disabled",
        }
        if usage is not None:  # OpenAI's schema has no null usage: it is left out until known
            response["usage"] = _usage(usage)
        return response

    def item_id(self, prefix: str, index: int) -> str:
        return f"{prefix}_{self.request_id}_{index}"


# The chat finish reasons that leave a response incomplete, and the reason it gives.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def _usage(usage: cs.Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": usage.completion,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning},
        "total_tokens": usage.prompt + usage.completion,
    }


def response_of(completion: dict[str, Any], shape: Shape) -> dict[str, Any]:
    """The `Response` object of a whole `chat.completion`."""
    choice, message = cs.first_choice(completion)
    finish = choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else "stop"
    item_status = "incomplete" if finish in _INCOMPLETE else "completed"
    output: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        output.append(_reasoning_output(shape, len(output), reasoning, "completed"))
    text = message.get("content")
    calls = [call for call in message.get("tool_calls") or [] if isinstance(call, dict)]
    if (isinstance(text, str) and text) or not calls:
        output.append(_message_output(shape, len(output), text if isinstance(text, str) else "", item_status))
    for call in calls:
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        output.append(
            _call_output(
                shape,
                len(output),
                str(call.get("id") or ""),
                str(function.get("name") or ""),
                str(function.get("arguments") or ""),
                "completed",
            )
        )
    usage = completion.get("usage")
    response = shape.response(
        "completed", output, cs.usage_of(usage) if isinstance(usage, dict) else None, finish=finish
    )
    if not response["model"] and isinstance(completion.get("model"), str):
        response["model"] = completion["model"]  # the default model, when the request named none
    return response


def _reasoning_output(shape: Shape, index: int, text: str, status: str) -> dict[str, Any]:
    summary = [{"type": "summary_text", "text": text}] if text else []
    item: dict[str, Any] = {
        "type": "reasoning",
        "id": shape.item_id("rs", index),
        "summary": summary,
        "status": status,
    }
    if shape.translated.include_encrypted:
        item["encrypted_content"] = None  # the site gives no opaque reasoning state to hand back
    return item


def _message_output(shape: Shape, index: int, text: str, status: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": shape.item_id("msg", index),
        "status": status,
        "role": "assistant",
        "content": [_text_part(text)] if status != "in_progress" else [],
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _call_output(
    shape: Shape, index: int, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": shape.item_id("fc", index),
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


# -- the stream --------------------------------------------------------------------------


@dataclass(slots=True)
class _Open:
    """The output item being streamed: its kind, place and what it has gathered so far."""

    kind: str  # reasoning, message, function_call
    index: int
    item: dict[str, Any]
    text: list[str] = field(default_factory=list)
    tool: int | None = None  # the chat tool-call index, for a function_call


class ResponseStream:
    """Encodes the events of a child's streamed answer as the Responses event stream.

    `start` opens it (`response.created`, `response.in_progress`); each `feed` returns
    the events of the chunk bytes given, at once; the answer's `[DONE]` closes the open
    item and sends `response.completed` (or `response.incomplete`); a failure, or a
    stream that ends without `[DONE]` (`close`), sends `response.failed`.
    """

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.reader = cs.ChunkReader()
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.open: _Open | None = None
        self.finish: str | None = None
        self.usage: cs.Usage | None = None
        self.ended = False

    def start(self) -> bytes:
        response = self.shape.response("in_progress", [], None)
        return self._event("response.created", response=response) + self._event(
            "response.in_progress", response=response
        )

    def feed(self, data: bytes) -> bytes:
        out = b""
        for event in self.reader.feed(data):
            if not self.ended:
                out += self._on(event)
        return out

    def close(self) -> bytes:
        """The stream's bytes are over: a stream that did not finish fails."""
        if self.ended:
            return b""
        return self._fail("the answer ended before it was complete; retry the request", "child_failed")

    def _on(self, event: cs.Event) -> bytes:
        if isinstance(event, cs.ReasoningDelta):
            return self._into("reasoning", event.text)
        if isinstance(event, cs.TextDelta):
            return self._into("message", event.text)
        if isinstance(event, cs.ToolStart):
            return self._close() + self._open_call(event)
        if isinstance(event, cs.ToolArguments):
            return self._arguments(event)
        if isinstance(event, cs.Finish):
            self.finish = event.reason
            return b""
        if isinstance(event, cs.Usage):
            self.usage = event
            return b""
        if isinstance(event, cs.Done):
            self.ended = True
            response = self.shape.response("completed", self.output, self.usage, finish=self.finish)
            name = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
            return self._close() + self._event(name, response=response)
        return self._fail(event.message, event.code)

    def _fail(self, message: str, code: str | None) -> bytes:
        self.ended = True
        closing = self._close(status="incomplete")
        # The Response's error codes are a fixed list; the coordinator's own code is in the words.
        kind = "rate_limit_exceeded" if code in ("quota_exhausted", "rate_limited") else "server_error"
        error = {"code": kind, "message": f"{message} ({code})" if code else message}
        response = self.shape.response("failed", self.output, self.usage, error=error)
        return closing + self._event("response.failed", response=response)

    def _into(self, kind: str, text: str) -> bytes:
        out = b""
        if self.open is None or self.open.kind != kind:
            out += self._close() + self._open_item(kind)
        current = self.open
        assert current is not None
        current.text.append(text)
        item_id = current.item["id"]
        if kind == "reasoning":
            return out + self._event(
                "response.reasoning_summary_text.delta",
                item_id=item_id,
                output_index=current.index,
                summary_index=0,
                delta=text,
            )
        return out + self._event(
            "response.output_text.delta",
            item_id=item_id,
            output_index=current.index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _open_item(self, kind: str) -> bytes:
        index = len(self.output)
        if kind == "reasoning":
            item = _reasoning_output(self.shape, index, "", "in_progress")
        else:
            item = _message_output(self.shape, index, "", "in_progress")
        self.open = _Open(kind, index, item)
        self.output.append(item)
        out = self._event("response.output_item.added", output_index=index, item=item)
        if kind == "reasoning":
            return out + self._event(
                "response.reasoning_summary_part.added",
                item_id=item["id"],
                output_index=index,
                summary_index=0,
                part={"type": "summary_text", "text": ""},
            )
        return out + self._event(
            "response.content_part.added",
            item_id=item["id"],
            output_index=index,
            content_index=0,
            part=_text_part(""),
        )

    def _open_call(self, event: cs.ToolStart) -> bytes:
        index = len(self.output)
        item = _call_output(self.shape, index, event.call_id, event.name, "", "in_progress")
        self.open = _Open("function_call", index, item, tool=event.index)
        self.output.append(item)
        return self._event("response.output_item.added", output_index=index, item=item)

    def _arguments(self, event: cs.ToolArguments) -> bytes:
        current = self.open
        if current is None or current.tool != event.index:
            return b""  # arguments of a call already closed: calls arrive one after another
        current.text.append(event.delta)
        return self._event(
            "response.function_call_arguments.delta",
            item_id=current.item["id"],
            output_index=current.index,
            delta=event.delta,
        )

    def _close(self, status: str | None = None) -> bytes:
        current, self.open = self.open, None
        if current is None:
            return b""
        text = "".join(current.text)
        if status is None:
            status = "incomplete" if current.kind == "message" and self.finish in _INCOMPLETE else "completed"
        item_id = current.item["id"]
        index = current.index
        out = b""
        if current.kind == "reasoning":
            done = _reasoning_output(self.shape, index, text, status)
            part = {"type": "summary_text", "text": text}
            out += self._event(
                "response.reasoning_summary_text.done",
                item_id=item_id,
                output_index=index,
                summary_index=0,
                text=text,
            )
            out += self._event(
                "response.reasoning_summary_part.done",
                item_id=item_id,
                output_index=index,
                summary_index=0,
                part=part,
            )
        elif current.kind == "message":
            done = _message_output(self.shape, index, text, status)
            out += self._event(
                "response.output_text.done",
                item_id=item_id,
                output_index=index,
                content_index=0,
                text=text,
                logprobs=[],
            )
            out += self._event(
                "response.content_part.done",
                item_id=item_id,
                output_index=index,
                content_index=0,
                part=_text_part(text),
            )
        else:
            item = current.item
            done = _call_output(self.shape, index, item["call_id"], item["name"], text, status)
            out += self._event(
                "response.function_call_arguments.done",
                item_id=item_id,
                output_index=index,
                name=item["name"],
                arguments=text,
            )
        self.output[index] = done
        return out + self._event("response.output_item.done", output_index=index, item=done)

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        return f"event: {kind}\ndata: {data}\n\n".encode()
