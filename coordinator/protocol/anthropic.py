"""Anthropic's Messages API (`POST /v1/messages`) as a translation of chat completions.

A Messages request becomes a chat-completions body that runs through the very same path
as `/v1/chat/completions`; the child's `chat.completion` (or its chunks) becomes a
`Message` (or Anthropic's event stream), and every error Anthropic's error object. Each
field is translated or refused with 400 naming it.

Thinking: `{type: enabled, budget_tokens}` asks for a `reasoning_effort` by budget
(under 4,096 tokens `low`, under 16,384 `medium`, else `high`); `adaptive` and `disabled`
leave the page's own thinking level, and the thinking it shows is returned either way.

Pure: no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from coordinator.protocol import adapting as check
from coordinator.protocol import chatstream as cs

# Anthropic's error types, by HTTP status (its SDK picks the exception class by status).
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    499: "invalid_request_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}
# Budgets of thinking tokens at or above which each effort is asked for.
EFFORT_BY_BUDGET = ((16_384, "high"), (4_096, "medium"), (0, "low"))
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
MAX_STOP_SEQUENCES = 4  # what the page takes


def error_type(status: int) -> str:
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


# The chat field each Messages field becomes, for an error the chat path names by its own
# field: the client of /v1/messages is told which of its fields that was.
FIELD_OF_CHAT: Final = {
    "reasoning_effort": "thinking (or output_config.effort)",
    "response_format": "output_config.format",
    "stop": "stop_sequences",
    "max_completion_tokens": "max_tokens",
    "max_tokens": "max_tokens",
    "parallel_tool_calls": "tool_choice.disable_parallel_tool_use",
    "user": "metadata.user_id",
}


def error_message(message: str, param: str | None) -> str:
    """A chat-path error's words for a Messages client: naming its own field where they differ."""
    field = FIELD_OF_CHAT.get(param or "")
    return f"{message} (On /v1/messages that is `{field}`.)" if field else message


def error_body(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error object."""
    return {"type": "error", "error": {"type": error_type(status), "message": message}}


# -- the request -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Translated:
    chat: dict[str, Any]
    model: str
    stream: bool


_KNOWN = frozenset(
    {
        "model", "messages", "max_tokens", "system", "stop_sequences", "temperature", "top_p", "top_k",
        "tools", "tool_choice", "thinking", "metadata", "stream", "service_tier", "output_config",
        "cache_control", "container", "mcp_servers", "context_management", "inference_geo", "speed",
        "diagnostics",
    }
)  # fmt: skip
_REFUSED = {
    "top_k": "the page has no top-k setting",
    "container": "no code-execution containers run here",
    "mcp_servers": "no MCP servers are reached from here",
    "context_management": "the context is not managed here",
    "inference_geo": "the answer comes from wherever the site serves it",
    "speed": "the page has no speed setting",
    "diagnostics": "no prompt cache runs here to diagnose",
}
_EFFORTS = frozenset({"low", "medium", "high"})


def translate(raw: bytes) -> Translated:
    """A Messages request as a chat-completions body, or InvalidRequest naming the field."""
    body = check.load_object(raw, "a JSON object with 'model', 'max_tokens' and 'messages'")
    for name in body:
        if name not in _KNOWN:
            raise check.unknown(name, _KNOWN)
    for name, why in _REFUSED.items():
        if body.get(name) is not None:
            raise check.refuse(name, why)
    if body.get("service_tier") not in (None, "auto", "standard_only"):
        raise check.refuse("service_tier", "use auto or standard_only: there is one tier")
    # A cache hint: there is no prompt cache here, and none is needed for the answer to be whole.
    if body.get("cache_control") is not None:
        check.obj(body["cache_control"], "cache_control")
    model = check.string(body.get("model"), "model", empty=False)
    if "max_tokens" not in body:
        raise check.invalid("max_tokens", "is required.")
    chat: dict[str, Any] = {"model": model, "max_tokens": check.whole(body["max_tokens"], "max_tokens")}
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system is not None:
        messages.append({"role": "system", "content": _system(system)})
    if "messages" not in body:
        raise check.invalid("messages", "is required: a list of {role, content}.")
    turns = check.array(body["messages"], "messages")
    if not turns:
        raise check.invalid("messages", "must hold at least one message.")
    for index, turn in enumerate(turns):
        messages.extend(_turn(check.obj(turn, f"messages[{index}]"), f"messages[{index}]"))
    chat["messages"] = messages
    stops = body.get("stop_sequences")
    if stops is not None:
        stops = check.array(stops, "stop_sequences", MAX_STOP_SEQUENCES)
        if stops:
            chat["stop"] = [check.string(s, f"stop_sequences[{i}]", empty=False) for i, s in enumerate(stops)]
    for name, high in (("temperature", 1.0), ("top_p", 1.0)):
        if body.get(name) is not None:
            chat[name] = check.number(body[name], name, 0.0, high)
    _tools(body, chat)
    _thinking(body, chat)
    _output_config(body, chat)
    metadata = body.get("metadata")
    if metadata is not None:
        metadata = check.obj(metadata, "metadata")
        check.only_keys(metadata, frozenset({"user_id"}), "metadata")
        if metadata.get("user_id") is not None:
            chat["user"] = check.string(metadata["user_id"], "metadata.user_id")
    stream = body.get("stream")
    stream = False if stream is None else check.boolean(stream, "stream")
    chat["stream"] = stream
    if stream:
        chat["stream_options"] = {"include_usage": True}
    return Translated(chat, model, stream)


def _system(system: object) -> str | list[dict[str, Any]]:
    if isinstance(system, str):
        return system
    return [
        _text_block(check.obj(block, f"system[{i}]"), f"system[{i}]")
        for i, block in enumerate(check.array(system, "system"))
    ]


_TEXT_KEYS = frozenset({"type", "text", "cache_control", "citations"})


def _text_block(block: dict[str, Any], param: str) -> dict[str, Any]:
    if block.get("type") != "text":
        raise check.invalid(f"{param}.type", "must be 'text'.")
    check.only_keys(block, _TEXT_KEYS, param)
    if block.get("citations"):
        raise check.refuse(f"{param}.citations", "no citations are given here")
    return {"type": "text", "text": check.string(block.get("text"), f"{param}.text")}


def _turn(turn: dict[str, Any], param: str) -> list[dict[str, Any]]:
    check.only_keys(turn, frozenset({"role", "content"}), param)
    role = turn.get("role")
    if role not in ("user", "assistant"):
        raise check.invalid(f"{param}.role", f"is {role!r}; use user or assistant.")
    content = turn.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    blocks = check.array(content, f"{param}.content")
    if role == "assistant":
        return [_assistant(blocks, param)]
    return _user(blocks, param)


def _user(blocks: list[Any], param: str) -> list[dict[str, Any]]:
    """Tool results become tool messages, which come first (right after the assistant's
    calls, as chat completions wants them); the rest is the user's message."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        where = f"{param}.content[{index}]"
        block = check.obj(block, where)
        kind = block.get("type")
        if kind == "text":
            parts.append(_text_block(block, where))
        elif kind == "image":
            parts.append(_image(block, where))
        elif kind == "tool_result":
            results.append(_tool_result(block, where))
        else:
            raise check.refuse(f"{where}.type", f"{kind!r} blocks are not read in user turns here")
    messages = results
    if parts or not results:
        messages.append({"role": "user", "content": parts})
    return messages


def _image(block: dict[str, Any], param: str) -> dict[str, Any]:
    check.only_keys(block, frozenset({"type", "source", "cache_control"}), param)
    source = check.obj(block.get("source"), f"{param}.source")
    kind = source.get("type")
    if kind == "base64":
        check.only_keys(source, frozenset({"type", "media_type", "data"}), f"{param}.source")
        media = check.string(source.get("media_type"), f"{param}.source.media_type", empty=False)
        data = check.string(source.get("data"), f"{param}.source.data", empty=False)
        url = f"data:{media};base64,{data}"
    elif kind == "url":
        check.only_keys(source, frozenset({"type", "url"}), f"{param}.source")
        url = check.string(source.get("url"), f"{param}.source.url", empty=False)
    else:
        raise check.refuse(f"{param}.source.type", "send an image as base64 or url")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result(block: dict[str, Any], param: str) -> dict[str, Any]:
    check.only_keys(block, frozenset({"type", "tool_use_id", "content", "is_error", "cache_control"}), param)
    call_id = check.string(block.get("tool_use_id"), f"{param}.tool_use_id", empty=False)
    content = block.get("content")
    texts: list[str] = []
    if isinstance(content, str):
        texts.append(content)
    elif content is not None:
        for index, part in enumerate(check.array(content, f"{param}.content")):
            where = f"{param}.content[{index}]"
            part = check.obj(part, where)
            if part.get("type") != "text":
                raise check.refuse(f"{where}.type", "a tool's result is read as text: send text blocks")
            texts.append(_text_block(part, where)["text"])
    text = "\n".join(texts)
    # A tool message has no error flag: the model reads that the call failed in its words.
    if block.get("is_error") is not None and check.boolean(block["is_error"], f"{param}.is_error"):
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def _assistant(blocks: list[Any], param: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant"}
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    thinking: list[str] = []
    for index, block in enumerate(blocks):
        where = f"{param}.content[{index}]"
        block = check.obj(block, where)
        kind = block.get("type")
        if kind == "text":
            parts.append(_text_block(block, where))
        elif kind == "tool_use":
            check.only_keys(block, frozenset({"type", "id", "name", "input", "cache_control"}), where)
            calls.append(
                {
                    "id": check.string(block.get("id"), f"{where}.id", empty=False),
                    "type": "function",
                    "function": {
                        "name": check.string(block.get("name"), f"{where}.name", empty=False),
                        "arguments": json.dumps(check.obj(block.get("input"), f"{where}.input")),
                    },
                }
            )
        elif kind == "thinking":
            check.only_keys(block, frozenset({"type", "thinking", "signature"}), where)
            thinking.append(check.string(block.get("thinking"), f"{where}.thinking"))
        else:
            raise check.refuse(f"{where}.type", f"{kind!r} blocks are not read in assistant turns here")
    message["content"] = parts if parts or not calls else None
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = "\n\n".join(thinking)
    return message


def _tools(body: dict[str, Any], chat: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools:
        chat["tools"] = [
            _tool(check.obj(tool, f"tools[{i}]"), f"tools[{i}]")
            for i, tool in enumerate(check.array(tools, "tools", check.MAX_TOOLS))
        ]
    choice = body.get("tool_choice")
    if choice is None:
        return
    choice = check.obj(choice, "tool_choice")
    kind = choice.get("type")
    check.only_keys(choice, frozenset({"type", "name", "disable_parallel_tool_use"}), "tool_choice")
    if kind == "auto":
        chat["tool_choice"] = "auto"
    elif kind == "any":
        chat["tool_choice"] = "required"
    elif kind == "none":
        chat["tool_choice"] = "none"
    elif kind == "tool":
        name = check.string(choice.get("name"), "tool_choice.name", empty=False)
        chat["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise check.invalid("tool_choice.type", "must be auto, any, tool or none.")
    parallel = choice.get("disable_parallel_tool_use")
    if parallel is not None:
        chat["parallel_tool_calls"] = not check.boolean(parallel, "tool_choice.disable_parallel_tool_use")


def _tool(tool: dict[str, Any], param: str) -> dict[str, Any]:
    if tool.get("type") not in (None, "custom"):
        raise check.refuse(f"{param}.type", f"{tool.get('type')!r} (server) tools do not run here")
    check.only_keys(
        tool, frozenset({"type", "name", "description", "input_schema", "cache_control", "strict"}), param
    )
    function: dict[str, Any] = {
        "name": check.string(tool.get("name"), f"{param}.name", empty=False),
        "parameters": check.obj(tool.get("input_schema"), f"{param}.input_schema"),
    }
    if tool.get("description") is not None:
        function["description"] = check.string(tool["description"], f"{param}.description")
    if tool.get("strict") is not None:
        function["strict"] = check.boolean(tool["strict"], f"{param}.strict")
    return {"type": "function", "function": function}


def _thinking(body: dict[str, Any], chat: dict[str, Any]) -> None:
    thinking = body.get("thinking")
    if thinking is None:
        return
    thinking = check.obj(thinking, "thinking")
    kind = thinking.get("type")
    check.only_keys(thinking, frozenset({"type", "budget_tokens", "display"}), "thinking")
    if thinking.get("display") not in (None, "summarized"):
        raise check.refuse("thinking.display", "the thinking the site shows is always returned")
    if kind == "enabled":
        budget = check.whole(thinking.get("budget_tokens"), "thinking.budget_tokens", 1024)
        if budget >= chat["max_tokens"]:
            raise check.invalid("thinking.budget_tokens", "must be less than max_tokens.")
        chat["reasoning_effort"] = next(effort for floor, effort in EFFORT_BY_BUDGET if budget >= floor)
    elif kind not in ("disabled", "adaptive"):
        raise check.invalid("thinking.type", "must be enabled, adaptive or disabled.")


def _output_config(body: dict[str, Any], chat: dict[str, Any]) -> None:
    config = body.get("output_config")
    if config is None:
        return
    config = check.obj(config, "output_config")
    check.only_keys(config, frozenset({"effort", "format"}), "output_config")
    effort = config.get("effort")
    if effort is not None:
        if not isinstance(effort, str) or effort not in _EFFORTS:
            raise check.refuse("output_config.effort", "use low, medium or high")
        chat["reasoning_effort"] = effort
    form = config.get("format")
    if form is not None:
        form = check.obj(form, "output_config.format")
        if form.get("type") != "json_schema":
            raise check.invalid("output_config.format.type", "must be json_schema.")
        schema = check.obj(form.get("schema"), "output_config.format.schema")
        chat["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


# -- the answer --------------------------------------------------------------------------


def tool_use_id(call_id: str) -> str:
    """Anthropic's spelling of a call id; the client hands it back as it got it."""
    return call_id if call_id.startswith("toolu_") else "toolu_" + call_id.removeprefix("call_")


def message_of(completion: dict[str, Any], request_id: str, model: str) -> dict[str, Any]:
    """The `Message` of a whole `chat.completion`; ValueError for tool arguments that are not
    a JSON object (no `tool_use` block could hold them)."""
    choice, message = cs.first_choice(completion)
    content: list[dict[str, Any]] = []
    thinking = message.get("reasoning_content")
    if isinstance(thinking, str) and thinking:
        content.append({"type": "thinking", "thinking": thinking, "signature": ""})
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        arguments = function.get("arguments") or "{}"
        given = json.loads(arguments) if isinstance(arguments, str) else None
        if not isinstance(given, dict):
            raise ValueError("the model's tool arguments are not a JSON object")
        content.append(
            {
                "type": "tool_use",
                "id": tool_use_id(str(call.get("id") or "")),
                "name": str(function.get("name") or ""),
                "input": given,
            }
        )
    usage = completion.get("usage")
    counts = cs.usage_of(usage) if isinstance(usage, dict) else cs.Usage(0, 0, 0)
    finish = choice.get("finish_reason")
    return {
        "id": f"msg_{request_id}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _STOP_REASONS.get(finish if isinstance(finish, str) else "stop", "end_turn"),
        "stop_sequence": None,
        "usage": _usage(counts),
    }


def _usage(usage: cs.Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt,
        "output_tokens": usage.completion,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


class MessageStream:
    """Encodes the events of a child's streamed answer as Anthropic's event stream.

    `start` sends `message_start`; each `feed` returns the events of the chunk bytes
    given, at once (a content block per kind of output: thinking, text, each tool call);
    `[DONE]` sends `message_delta` (stop reason, usage) and `message_stop`; a failure, or
    a stream that ends without `[DONE]` (`close`), sends an `error` event.
    """

    def __init__(self, request_id: str, model: str) -> None:
        self.request_id = request_id
        self.model = model
        self.reader = cs.ChunkReader()
        self.block = -1  # the index of the open content block, if any
        self.open: str | None = None  # its kind: thinking, text, or tool:<chat index>
        self.finish = "stop"
        self.usage = cs.Usage(0, 0, 0)
        self.ended = False

    def start(self) -> bytes:
        message: dict[str, Any] = {
            "id": f"msg_{self.request_id}",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # The counts come with the answer's end: message_delta carries them.
            "usage": _usage(self.usage),
        }
        return _event("message_start", message=message)

    def feed(self, data: bytes) -> bytes:
        out = b""
        for event in self.reader.feed(data):
            if not self.ended:
                out += self._on(event)
        return out

    def close(self) -> bytes:
        if self.ended:
            return b""
        self.ended = True
        return error_event(502, "the answer ended before it was complete; retry the request")

    def _on(self, event: cs.Event) -> bytes:
        if isinstance(event, cs.ReasoningDelta):
            opened = self._into("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            return opened + self._delta({"type": "thinking_delta", "thinking": event.text})
        if isinstance(event, cs.TextDelta):
            return self._into("text", {"type": "text", "text": ""}) + self._delta(
                {"type": "text_delta", "text": event.text}
            )
        if isinstance(event, cs.ToolStart):
            block = {
                "type": "tool_use",
                "id": tool_use_id(event.call_id),
                "name": event.name,
                "input": {},
            }
            return self._into(f"tool:{event.index}", block)
        if isinstance(event, cs.ToolArguments):
            if self.open != f"tool:{event.index}":
                return b""
            return self._delta({"type": "input_json_delta", "partial_json": event.delta})
        if isinstance(event, cs.Finish):
            self.finish = event.reason
            return b""
        if isinstance(event, cs.Usage):
            self.usage = event
            return b""
        self.ended = True
        if isinstance(event, cs.Done):
            reason = _STOP_REASONS.get(self.finish, "end_turn")
            usage = {"input_tokens": self.usage.prompt, "output_tokens": self.usage.completion}
            ending = _event(
                "message_delta", delta={"stop_reason": reason, "stop_sequence": None}, usage=usage
            )
            return self._stop() + ending + _event("message_stop")
        said = f"{event.message} ({event.code})" if event.code else event.message
        return self._stop() + error_event(event.status, said)

    def _into(self, kind: str, block: dict[str, Any]) -> bytes:
        if self.open == kind:
            return b""
        out = self._stop()
        self.block += 1
        self.open = kind
        return out + _event("content_block_start", index=self.block, content_block=block)

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _event("content_block_delta", index=self.block, delta=delta)

    def _stop(self) -> bytes:
        if self.open is None:
            return b""
        self.open = None
        return _event("content_block_stop", index=self.block)


def error_event(status: int, message: str) -> bytes:
    return _frame("error", error_body(status, message))


def _event(kind: str, **fields: Any) -> bytes:
    return _frame(kind, {"type": kind, **fields})


def _frame(kind: str, payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"event: {kind}\ndata: {data}\n\n".encode()
