"""What a chat request asks for beyond text and sampling, read once and typed: function
tools and the tool choice, the output format, the reasoning effort, the search tools, and
the files its messages carry (images, PDFs, audio), each checked the way OpenAI checks it.

`parse_chat_request` (in `coordinator.protocol.openai`) calls these, so the coordinator
refuses a bad request before it takes a child's turn, and the child builds its `Prompt`
from the same types. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from coordinator.protocol.errors import InvalidRequest

# OpenAI's rule for a function's name (Gemini's is looser), and its limit on tools.
FUNCTION_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_TOOLS: Final = 128
# A page takes a few files per prompt and about 20 MB inline; the body limit bounds the rest.
MAX_ATTACHMENTS: Final = 16
MAX_ATTACHMENT_BYTES: Final = 20 * 1024 * 1024
# What the page's upload flow takes, by MIME type, and the file name's ending for each.
ATTACHMENT_TYPES: Final = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "image/heic": "heic",
    "image/heif": "heif",
    "application/pdf": "pdf",
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
    "text/plain": "txt",
}
AUDIO_FORMATS: Final = {"wav": "audio/wav", "mp3": "audio/mpeg"}
REASONING_EFFORTS: Final = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
_DATA_URL: Final = re.compile(r"data:([\w.+-]+/[\w.+-]+)((?:;[\w.+-]+=[\w.+-]+)*);base64,", re.ASCII)


class ToolMode(StrEnum):
    """OpenAI's tool choice: none (answer in text), auto (the model decides), required."""

    NONE = "none"
    AUTO = "auto"
    REQUIRED = "required"


@dataclass(frozen=True, slots=True)
class FunctionTool:
    """A function the model may call; `parameters` is its arguments' JSON Schema."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] | None = None
    strict: bool = False


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """How the model may use the tools: `function` names the one it must call."""

    mode: ToolMode = ToolMode.AUTO
    function: str | None = None


class OutputKind(StrEnum):
    TEXT = "text"
    JSON_OBJECT = "json_object"
    JSON_SCHEMA = "json_schema"


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """`response_format`: free text, any JSON object, or JSON matching `schema`."""

    kind: OutputKind = OutputKind.TEXT
    name: str | None = None
    schema: Mapping[str, Any] | None = None
    strict: bool = False


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """What a request asks of the page besides its messages and sampling settings."""

    tools: tuple[FunctionTool, ...] = ()
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    parallel_tool_calls: bool = True
    output: OutputFormat = field(default_factory=OutputFormat)
    reasoning_effort: str | None = None
    web_search: bool = False
    # Not OpenAI's: `url_context: true` lets the model read the URLs in the prompt.
    url_context: bool = False

    @property
    def calls_tools(self) -> bool:
        """Whether the model is offered any function at all."""
        return bool(self.tools) and self.tool_choice.mode is not ToolMode.NONE


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file a message carries, for the page's upload flow: `message` is its index."""

    message: int
    mime_type: str
    data: bytes = field(repr=False)
    name: str


# -- options --------------------------------------------------------------------------------


def parse_options(body: Mapping[str, Any]) -> ChatOptions:
    """The options of a chat body, or InvalidRequest naming the field at fault."""
    tools = _tools(body)
    names = {tool.name for tool in tools}
    choice = _tool_choice(body, names)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise InvalidRequest("'parallel_tool_calls' must be true or false.", param="parallel_tool_calls")
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        raise InvalidRequest(
            f"'reasoning_effort' must be one of {', '.join(REASONING_EFFORTS)}.",
            param="reasoning_effort",
            code="invalid_value",
        )
    return ChatOptions(
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=parallel is not False,
        output=_output_format(body.get("response_format")),
        reasoning_effort=effort,
        web_search=_web_search(body.get("web_search_options")),
        url_context=_flag(body, "url_context"),
    )


def _tools(body: Mapping[str, Any]) -> tuple[FunctionTool, ...]:
    if body.get("tools") and body.get("functions"):
        raise InvalidRequest("Send 'tools' or the older 'functions', not both.", param="functions")
    raw = body.get("tools")
    param = "tools"
    if not raw:
        raw, param = body.get("functions"), "functions"
        # The older form is a list of bare function objects.
        raw = [{"type": "function", "function": item} for item in raw] if isinstance(raw, list) else raw
    if raw is None or raw == []:
        return ()
    if not isinstance(raw, list):
        raise InvalidRequest(f"'{param}' must be a list of tools.", param=param)
    if len(raw) > MAX_TOOLS:
        raise InvalidRequest(f"'{param}' has {len(raw)} tools; at most {MAX_TOOLS}.", param=param)
    tools: list[FunctionTool] = []
    for index, item in enumerate(raw):
        where = f"{param}[{index}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where} must be an object.", param=where)
        if item.get("type") != "function":
            raise InvalidRequest(
                f"{where}.type is {item.get('type')!r}: only 'function' tools reach the page "
                "(for Google Search send 'web_search_options').",
                param=f"{where}.type",
                code="unsupported_parameter",
            )
        function = item.get("function")
        if not isinstance(function, dict):
            raise InvalidRequest(f"{where}.function must be an object.", param=f"{where}.function")
        name = function.get("name")
        if not isinstance(name, str) or not FUNCTION_NAME.fullmatch(name):
            raise InvalidRequest(
                f"{where}.function.name must be 1 to 64 of a-z, A-Z, 0-9, '_' and '-'.",
                param=f"{where}.function.name",
            )
        if any(tool.name == name for tool in tools):
            raise InvalidRequest(f"{where} declares {name!r} a second time.", param=f"{where}.function.name")
        description = function.get("description", "")
        if not isinstance(description, str):
            raise InvalidRequest(
                f"{where}.function.description must be a string.", param=f"{where}.function.description"
            )
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise InvalidRequest(
                f"{where}.function.parameters must be a JSON Schema object.",
                param=f"{where}.function.parameters",
            )
        strict = function.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise InvalidRequest(
                f"{where}.function.strict must be true or false.", param=f"{where}.function.strict"
            )
        tools.append(FunctionTool(name, description, parameters, bool(strict)))
    return tuple(tools)


def _tool_choice(body: Mapping[str, Any], names: set[str]) -> ToolChoice:
    param = "tool_choice" if "tool_choice" in body else "function_call"
    raw = body.get(param)
    if raw is None:
        return ToolChoice()
    if isinstance(raw, str) and raw in ToolMode.__members__.values():
        mode = ToolMode(raw)
        if mode is ToolMode.REQUIRED and not names:
            raise InvalidRequest(f"'{param}' is 'required' but no tools are declared.", param=param)
        return ToolChoice(mode)
    # {"type": "function", "function": {"name": …}}; the older function_call is {"name": …}.
    function = raw.get("function") if isinstance(raw, dict) and param == "tool_choice" else raw
    name = function.get("name") if isinstance(function, dict) else None
    if isinstance(raw, dict) and param == "tool_choice" and raw.get("type") != "function":
        raise InvalidRequest(
            f"'{param}' of type {raw.get('type')!r} is not supported: use none, auto, required "
            "or a function.",
            param=param,
            code="unsupported_parameter",
        )
    if not isinstance(name, str):
        raise InvalidRequest(
            f"'{param}' must be 'none', 'auto', 'required' or a named function.", param=param
        )
    if name not in names:
        raise InvalidRequest(f"'{param}' names {name!r}, which is not among the tools.", param=param)
    return ToolChoice(ToolMode.REQUIRED, name)


def _output_format(raw: Any) -> OutputFormat:
    if raw is None:
        return OutputFormat()
    kinds = ", ".join(kind.value for kind in OutputKind)
    if not isinstance(raw, dict) or raw.get("type") not in OutputKind.__members__.values():
        raise InvalidRequest(
            f"'response_format' must be an object whose type is one of {kinds}.", param="response_format"
        )
    kind = OutputKind(raw["type"])
    if kind is not OutputKind.JSON_SCHEMA:
        return OutputFormat(kind)
    spec = raw.get("json_schema")
    if not isinstance(spec, dict):
        raise InvalidRequest(
            "'response_format.json_schema' must be an object.", param="response_format.json_schema"
        )
    name = spec.get("name")
    if not isinstance(name, str) or not FUNCTION_NAME.fullmatch(name):
        raise InvalidRequest(
            "'response_format.json_schema.name' must be 1 to 64 of a-z, A-Z, 0-9, '_' and '-'.",
            param="response_format.json_schema.name",
        )
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise InvalidRequest(
            "'response_format.json_schema.schema' must be a JSON Schema object.",
            param="response_format.json_schema.schema",
        )
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise InvalidRequest(
            "'response_format.json_schema.strict' must be true or false.",
            param="response_format.json_schema.strict",
        )
    return OutputFormat(kind, name, schema, bool(strict))


def _web_search(raw: Any) -> bool:
    if raw is None:
        return False
    if not isinstance(raw, dict):
        raise InvalidRequest("'web_search_options' must be an object.", param="web_search_options")
    # The page's search tool has no location and no context size: asking for one is refused.
    for key in ("user_location", "search_context_size"):
        if raw.get(key) is not None:
            raise InvalidRequest(
                f"'web_search_options.{key}' is not supported: the page's Google Search takes no "
                "location or context size; send web_search_options: {}.",
                param=f"web_search_options.{key}",
                code="unsupported_parameter",
            )
    unknown = sorted(set(raw) - {"user_location", "search_context_size"})
    if unknown:
        raise InvalidRequest(
            f"'web_search_options.{unknown[0]}' is not a known field.",
            param=f"web_search_options.{unknown[0]}",
        )
    return True


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be true or false.", param=name)
    return bool(value)


# -- messages ----------------------------------------------------------------------------------


# A message's fields beyond role and content. An answer's own fields come back when a client
# appends the answer to its history (`messages.append(choice.message)`): they describe an
# earlier turn and are accepted; any other field with a value is refused by name.
MESSAGE_FIELDS: Final = frozenset({"role", "content", "name", "tool_calls", "tool_call_id", "function_call"})
ECHOED_FIELDS: Final = frozenset({"refusal", "annotations", "reasoning_content", "parsed"})


def check_message_fields(message: Mapping[str, Any], param: str) -> None:
    """A message's fields beyond role and content: its name, an assistant's tool calls, a
    tool result's call id; anything else with a value is refused by name."""
    for key, value in message.items():
        if value is None or key in MESSAGE_FIELDS or key in ECHOED_FIELDS:
            continue
        if key == "audio":
            raise InvalidRequest(
                f"{param}.audio is not supported: answers here are text, so no earlier audio answer "
                "can be referred to.",
                param=f"{param}.audio",
                code="unsupported_parameter",
            )
        raise InvalidRequest(
            f"{param}.{key} is not a field of a message.", param=f"{param}.{key}", code="unknown_parameter"
        )
    name = message.get("name")
    if name is not None and (not isinstance(name, str) or not name or len(name) > 256):
        raise InvalidRequest(f"{param}.name must be a non-empty string.", param=f"{param}.name")
    role = message.get("role")
    calls = message.get("tool_calls")
    if calls is not None:
        if role != "assistant":
            raise InvalidRequest(
                f"{param} has tool_calls but is not an assistant message.", param=f"{param}.tool_calls"
            )
        _check_tool_calls(calls, f"{param}.tool_calls")
    if role == "tool" and not (isinstance(message.get("tool_call_id"), str) and message["tool_call_id"]):
        raise InvalidRequest(
            f"{param} is a tool message without 'tool_call_id': say which call it answers.",
            param=f"{param}.tool_call_id",
        )
    if role == "function" and not isinstance(name, str):
        raise InvalidRequest(f"{param} is a function message without 'name'.", param=f"{param}.name")
    call = message.get("function_call")
    if call is not None:
        if role != "assistant":
            raise InvalidRequest(
                f"{param} has function_call but is not an assistant message.", param=f"{param}.function_call"
            )
        _check_function(call, f"{param}.function_call")


def _check_tool_calls(calls: Any, param: str) -> None:
    if not isinstance(calls, list):
        raise InvalidRequest(f"{param} must be a list.", param=param)
    for index, call in enumerate(calls):
        where = f"{param}[{index}]"
        if not isinstance(call, dict) or not isinstance(call.get("id"), str) or not call["id"]:
            raise InvalidRequest(f"{where} must be an object with an 'id'.", param=where)
        if call.get("type", "function") != "function":
            raise InvalidRequest(f"{where}.type must be 'function'.", param=f"{where}.type")
        _check_function(call.get("function"), f"{where}.function")


def _check_function(function: Any, param: str) -> None:
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest(f"{param} must be an object with a 'name'.", param=param)
    if not isinstance(function.get("arguments", ""), str):
        raise InvalidRequest(f"{param}.arguments must be a string of JSON.", param=f"{param}.arguments")


# -- attachments -------------------------------------------------------------------------------

# Content parts: those read as text, those carrying a file.
TEXT_PARTS: Final = {"text": "text", "refusal": "refusal"}  # type → the field that holds its text
FILE_PARTS: Final = frozenset({"image_url", "input_audio", "file"})


def part_attachment(part: Mapping[str, Any], message: int, param: str, *, number: int) -> Attachment:
    """The file of an image_url, input_audio or file part, or InvalidRequest naming the part.

    `number` counts the request's files, for a name when the client gave none."""
    kind = part.get("type")
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise InvalidRequest(f"{param}.image_url.url must be a string.", param=f"{param}.image_url.url")
        detail = image.get("detail") if isinstance(image, dict) else None
        if detail not in (None, "auto"):
            raise InvalidRequest(
                f"{param}.image_url.detail {detail!r} is not supported: the page picks the "
                "resolution itself; leave it out or send 'auto'.",
                param=f"{param}.image_url.detail",
                code="unsupported_parameter",
            )
        if url.startswith(("http://", "https://")):
            raise InvalidRequest(
                f"{param}.image_url.url is a web address: send the image as a data: URL "
                "(the coordinator fetches web images only when started with --fetch-image-urls).",
                param=f"{param}.image_url.url",
                code="unsupported_parameter",
            )
        mime, data = _data_url(url, f"{param}.image_url.url")
        if not mime.startswith("image/"):
            raise InvalidRequest(
                f"{param}.image_url.url is {mime}, not an image.", param=f"{param}.image_url.url"
            )
        return Attachment(message, mime, data, f"image-{number}.{ATTACHMENT_TYPES[mime]}")
    if kind == "input_audio":
        audio = part.get("input_audio")
        fmt = audio.get("format") if isinstance(audio, dict) else None
        if fmt not in AUDIO_FORMATS:
            raise InvalidRequest(
                f"{param}.input_audio.format must be one of {', '.join(AUDIO_FORMATS)}.",
                param=f"{param}.input_audio.format",
            )
        assert isinstance(audio, dict)
        data = _base64(audio.get("data"), f"{param}.input_audio.data")
        return Attachment(message, AUDIO_FORMATS[fmt], data, f"audio-{number}.{fmt}")
    file = part.get("file")
    if not isinstance(file, dict):
        raise InvalidRequest(f"{param}.file must be an object.", param=f"{param}.file")
    if file.get("file_id") is not None:
        raise InvalidRequest(
            f"{param}.file.file_id is not supported: there is no Files API here; send the file "
            "itself as file_data (a data: URL).",
            param=f"{param}.file.file_id",
            code="unsupported_parameter",
        )
    filename = file.get("filename")
    if filename is not None and (not isinstance(filename, str) or not filename or len(filename) > 255):
        raise InvalidRequest(f"{param}.file.filename must be a file name.", param=f"{param}.file.filename")
    raw = file.get("file_data")
    if not isinstance(raw, str):
        raise InvalidRequest(f"{param}.file.file_data must be a data: URL.", param=f"{param}.file.file_data")
    mime, data = _data_url(raw, f"{param}.file.file_data")
    name = filename or f"file-{number}.{ATTACHMENT_TYPES[mime]}"
    return Attachment(message, mime, data, name)


def attachments(messages: Sequence[Mapping[str, Any]]) -> tuple[Attachment, ...]:
    """Every file the messages carry, in order; of a body `parse_chat_request` accepted."""
    found: list[Attachment] = []
    for index, message in enumerate(messages):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part_index, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") in FILE_PARTS:
                where = f"messages[{index}].content[{part_index}]"
                found.append(part_attachment(part, index, where, number=len(found) + 1))
    return tuple(found)


def _data_url(url: str, param: str) -> tuple[str, bytes]:
    match = _DATA_URL.match(url)
    if match is None:
        raise InvalidRequest(f"{param} must be a data: URL (data:<type>;base64,<data>).", param=param)
    mime = match.group(1).lower()
    if mime == "audio/mp3":
        mime = "audio/mpeg"
    if mime not in ATTACHMENT_TYPES:
        raise InvalidRequest(
            f"{param} is {mime}; the page takes {', '.join(ATTACHMENT_TYPES)}.",
            param=param,
            code="unsupported_parameter",
        )
    return mime, _base64(url[match.end() :], param)


def _base64(raw: Any, param: str) -> bytes:
    if not isinstance(raw, str) or not raw:
        raise InvalidRequest(f"{param} must be base64 data.", param=param)
    # Checked before decoding: 4 characters hold 3 bytes.
    if len(raw) // 4 * 3 > MAX_ATTACHMENT_BYTES:
        raise InvalidRequest(f"{param} is over {MAX_ATTACHMENT_BYTES // 2**20} MiB.", param=param)
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{param} is not valid base64.", param=param) from None
