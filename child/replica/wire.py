"""The answer endpoint's wire format (json+protobuf), both ways: the request the page
posts and the frames the endpoint streams back, byte for byte as spec section B has it.

json+protobuf is protobuf written as JSON arrays: a message is an array whose index is
the field number less one, unset fields are `null`, trailing unset fields are left off.
So a reader can only find things by position, which is what the capture must do.

Request (what the replica's page sends; the positions are the replica's choice):

    [ "models/<id>",                        0 model
      [content, ...],                       1 the chat so far, the new prompt last
      null,                                 2 safety settings (unused)
      [stop|null, null, null, max_tokens,   3 generation config
       temperature|null, top_p|null, top_k,
       "application/json"|null,             3.7 response MIME type (structured output on)
       schema|null,                         3.8 response schema (a JSON object, the page's subset)
       thinking level|null],                3.9: 1 Minimal, 2 Low, 3 Medium, 4 High
      "<request nonce, 32 hex>",            4 per request, also the run's id
      [[name, description|null,             5 function declarations (function calling on),
        parameters|null], ...]|null,          parameters a JSON object (the page's schema subset)
      null,                                 6 function-calling config (mode, allowed names):
                                              reserved; the page has no such control, sends none
      [google_search 1|null,                7 grounding tools, null when both are off
       url_context 1|null]|null,
      content|null,                         8 system instruction
      null,
      1|null ]                              10 temporary chat
    content = [[part, ...], "user"|"model"]; a text part = [null, "text"]; a file part
    (`child.replica.uploads`) = [null, null, [mime_type, base64, name]]: index 2 is the
    inline data, the files before the text

Response: `[[frame, frame, ...]]`; see `frame` and the part builders below. A frame's
candidate is `[content, finish?, …]`; an answer grounded by Google Search or URL context
carries, on its last frame, the grounding metadata at candidate `[8]` (Gemini's
GroundingMetadata, field 9) and, for URL context, the URLs read at candidate `[12]`:

    [8]  [[chunk, ...], [support, ...], [query, ...]]
         chunk   = [[uri, title]]                       (a web source)
         support = [[part|null, start|null, end, text], [chunk index, ...]]
                   start and end are UTF-8 byte offsets in the answer's text (0 is null,
                   as json+protobuf leaves zeros out)
    [12] [[[url, status], ...]]                         status 1: read
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from child.replica.answer import Finish, Usage
from child.replica.tools import JSON_MIME, FunctionDeclaration, declaration_problem, schema_problem
from child.replica.uploads import FilePartError, InlineFile, read_file_part

RPC_PREFIX: Final = "/$rpc/google.internal.alkali.applications.makersuite.v1.MakerSuiteService/"
GENERATE_PATH: Final = RPC_PREFIX + "GenerateContent"
LIST_MODELS_PATH: Final = RPC_PREFIX + "ListModels"
REQUEST_CONTENT_TYPE: Final = "application/json+protobuf"
RESPONSE_CONTENT_TYPE: Final = "application/json+protobuf; charset=UTF-8"

# Google's canonical codes and texts for the errors the endpoint gives.
INVALID_ARGUMENT: Final = (3, "Request contains an invalid argument.")
NOT_FOUND: Final = 5
PERMISSION_DENIED: Final = (7, "The caller does not have permission")
RESOURCE_EXHAUSTED: Final = (8, "Resource has been exhausted (e.g. check quota).")
UNAUTHENTICATED: Final = (16, "Request is missing required authentication credential.")

NONCE: Final = re.compile(r"[0-9a-f]{32}")
MODEL_PREFIX: Final = "models/"

JsonArray = list[Any]


class WireError(ValueError):
    """A request body that is not the page's json+protobuf; the message says where."""


# ---- the request


@dataclass(frozen=True, slots=True)
class Turn:
    role: str
    text: str
    files: tuple[InlineFile, ...] = ()


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """What a GenerateContent request asks for, read from its positions."""

    model: str
    turns: tuple[Turn, ...]
    system: str
    stop: tuple[str, ...]
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    nonce: str
    temporary: bool
    functions: tuple[FunctionDeclaration, ...] = ()
    response_mime: str | None = None
    response_schema: Mapping[str, Any] | None = None
    # The thinking level's code at [3][9] (settings_panel.LEVEL_CODES), and the tools at [7].
    thinking_level: int | None = None
    search: bool = False
    url_context: bool = False

    @property
    def prompt(self) -> str:
        """The newest user turn: what this request asks."""
        return next((turn.text for turn in reversed(self.turns) if turn.role == "user"), "")

    @property
    def files(self) -> tuple[InlineFile, ...]:
        """The files of the newest user turn: what this request attaches."""
        return next((turn.files for turn in reversed(self.turns) if turn.role == "user"), ())

    @property
    def context(self) -> tuple[str, ...]:
        """The rest of the request's text: the system instruction and earlier turns."""
        earlier = [turn.text for turn in self.turns]
        if earlier:
            earlier.pop(max(i for i, turn in enumerate(self.turns) if turn.role == "user"))
        return (self.system, *earlier) if self.system else tuple(earlier)


def _at(array: Sequence[Any], index: int) -> Any:
    return array[index] if index < len(array) else None


def _content_text(content: Any, where: str) -> Turn:
    if not (isinstance(content, list) and len(content) == 2 and isinstance(content[0], list)):
        raise WireError(f"{where} is not [[part, ...], role]")
    role = content[1]
    if role not in ("user", "model"):
        raise WireError(f"{where} has role {role!r}")
    texts, files = [], []
    for index, part in enumerate(content[0]):
        if isinstance(part, list) and len(part) == 3 and part[1] is None and part[2] is not None:
            try:
                files.append(read_file_part(part[2]))
            except FilePartError as exc:
                raise WireError(f"{where}[0][{index}][2] {exc}") from None
            continue
        if not (isinstance(part, list) and len(part) >= 2 and isinstance(part[1], str)):
            raise WireError(f"{where} holds a part that is not [null, text]")
        texts.append(part[1])
    return Turn(role, "".join(texts), tuple(files))


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WireError(f"{where} is not a number")
    return float(value)


def parse_request(body: bytes) -> GenerateRequest:
    """The request the page posted; raises WireError for anything the page never sends."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError("the body is not JSON") from exc
    if not isinstance(data, list) or len(data) < 5:
        raise WireError("the body is not a GenerateContent array")
    model = data[0]
    if not isinstance(model, str) or not model.startswith(MODEL_PREFIX):
        raise WireError("[0] is not models/<id>")
    contents = data[1]
    if not isinstance(contents, list) or not contents:
        raise WireError("[1] holds no contents")
    turns = tuple(_content_text(content, f"[1][{i}]") for i, content in enumerate(contents))
    if turns[-1].role != "user" or not turns[-1].text.strip():
        raise WireError("the last content is not a user prompt")
    config = data[3] if data[3] is not None else []
    if not isinstance(config, list):
        raise WireError("[3] is not a generation config")
    stop = _at(config, 0) or []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise WireError("[3][0] is not a list of stop sequences")
    max_tokens = _at(config, 3)
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)):
        raise WireError("[3][3] is not a whole number")
    nonce = data[4]
    if not isinstance(nonce, str) or not NONCE.fullmatch(nonce):
        raise WireError("[4] is not a request nonce")
    functions = _functions(_at(data, 5))
    if _at(data, 6) is not None:
        raise WireError("[6] is set: the page sends no function-calling config")
    response_mime = _at(config, 7)
    if response_mime not in (None, JSON_MIME):
        raise WireError("[3][7] is not a response MIME type the page sends")
    response_schema = _at(config, 8)
    if response_schema is not None and (response_mime is None or schema_problem(response_schema, "[3][8]")):
        raise WireError("[3][8] is not a response schema the page takes")
    level = _at(config, 9)
    if level is not None and (isinstance(level, bool) or not isinstance(level, int)):
        raise WireError("[3][9] is not a thinking level")
    tools = _at(data, 7)
    if tools is not None and not (
        isinstance(tools, list) and len(tools) <= 2 and all(flag in (None, 1) for flag in tools)
    ):
        raise WireError("[7] is not [google_search 1|null, url_context 1|null]")
    tools = tools or []
    system_content = _at(data, 8)
    system = _content_text(system_content, "[8]").text if system_content is not None else ""
    return GenerateRequest(
        model=model.removeprefix(MODEL_PREFIX),
        turns=turns,
        system=system,
        stop=tuple(stop),
        max_tokens=max_tokens,
        temperature=_number(_at(config, 4), "[3][4]"),
        top_p=_number(_at(config, 5), "[3][5]"),
        nonce=nonce,
        temporary=_at(data, 10) == 1,
        functions=functions,
        response_mime=response_mime,
        response_schema=response_schema,
        thinking_level=level,
        search=_at(tools, 0) == 1,
        url_context=_at(tools, 1) == 1,
    )


def _functions(raw: Any) -> tuple[FunctionDeclaration, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise WireError("[5] is not a list of function declarations")
    declarations = []
    for index, item in enumerate(raw):
        if not (isinstance(item, list) and len(item) == 3):
            raise WireError(f"[5][{index}] is not [name, description, parameters]")
        name, description, parameters = item
        as_object = {"name": name, "description": description or "", "parameters": parameters or {}}
        if declaration_problem(as_object, f"[5][{index}]"):
            raise WireError(f"[5][{index}] is not a declaration the page takes")
        declarations.append(FunctionDeclaration(name, description or "", parameters or {}))
    return tuple(declarations)


def encode_request(request: GenerateRequest) -> bytes:
    """`request` as the page writes it (tests use it to speak for a page)."""
    turns = [
        [[*(file.to_part() for file in turn.files), [None, turn.text]], turn.role] for turn in request.turns
    ]
    config: list[Any] = [list(request.stop) or None, None, None, request.max_tokens, request.temperature,
              request.top_p, 64]  # fmt: skip
    if request.response_mime is not None or request.thinking_level is not None:
        config += [request.response_mime, request.response_schema]
    if request.thinking_level is not None:
        config += [request.thinking_level]
    system = [[[None, request.system]], "user"] if request.system else None
    functions = [[f.name, f.description or None, dict(f.parameters) or None] for f in request.functions]
    tools = [1 if request.search else None, 1 if request.url_context else None]
    data = [MODEL_PREFIX + request.model, turns, None, config, request.nonce,
            functions or None, None, tools if any(tools) else None, system, None,
            1 if request.temporary else None]  # fmt: skip
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


# ---- the response


def text_part(text: str) -> JsonArray:
    return [None, text]


def thought_part(text: str) -> JsonArray:
    """Thinking text: index 12 is true (13 elements)."""
    return [None, text, *([None] * 10), True]


def signature_part(signature: str) -> JsonArray:
    """The thought signature: no text, index 14 (15 elements); readers skip it."""
    return [*([None] * 12), True, None, signature]


def function_call_part(name: str, arguments: Mapping[str, Any]) -> JsonArray:
    """A function call: index 10 is [name, Struct] (11 elements)."""
    return [*([None] * 10), [name, struct(arguments)]]


def struct(mapping: Mapping[str, Any]) -> JsonArray:
    """A protobuf Struct: [[["key", Value], ...]]."""
    return [[[key, value(item)] for key, item in mapping.items()]]


def value(item: Any) -> JsonArray:
    """A protobuf Value, its kind told by the array's length."""
    if item is None:
        return [0]
    if isinstance(item, bool):
        return [None, None, None, item]
    if isinstance(item, int | float):
        return [None, item]
    if isinstance(item, str):
        return [None, None, item]
    if isinstance(item, Mapping):
        return [None, None, None, None, struct(item)]
    if isinstance(item, list | tuple):
        return [None, None, None, None, None, [[value(element) for element in item]]]
    raise TypeError(f"no protobuf Value for {type(item).__name__}")


def usage(counts: Usage) -> JsonArray:
    """[prompt, candidates, total, six nulls, thoughts]; the thoughts slot only when some."""
    head: JsonArray = [counts.prompt, counts.candidates, counts.total]
    return [*head, *([None] * 6), counts.thoughts] if counts.thoughts else head


def frame(
    parts: list[JsonArray],
    finish: Finish | None = None,
    counts: Usage | None = None,
    grounding: JsonArray | None = None,
    urls_read: JsonArray | None = None,
) -> JsonArray:
    """[[candidate], null, usage?]; candidate [content], [content, finish], then the
    grounding metadata at [8] and the URLs read at [12] when given."""
    content = [parts, "model"]
    candidate: JsonArray = [content] if finish is None else [content, int(finish)]
    for index, extra in ((8, grounding), (12, urls_read)):
        if extra is not None:
            candidate += [None] * (index - len(candidate)) + [extra]
    return [[candidate]] if counts is None else [[candidate], None, usage(counts)]


def error_body(code: int, message: str) -> bytes:
    return dumps([None, [code, message]])


def dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


class BodyWriter:
    """Writes `[[frame,frame,...]]` a frame at a time, gzip-encoded if asked.

    Each call returns the bytes of one chunk. The gzip stream is flushed with
    Z_SYNC_FLUSH after every frame, so a reader can decode each frame as it arrives.
    """

    def __init__(self, gzip: bool) -> None:
        self._compressor = zlib.compressobj(wbits=31) if gzip else None
        self._frames = 0

    def _encode(self, data: bytes, final: bool = False) -> bytes:
        if self._compressor is None:
            return data
        flush = zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH
        return self._compressor.compress(data) + self._compressor.flush(flush)

    def frame(self, data: JsonArray) -> bytes:
        lead = b"[[" if self._frames == 0 else b","
        self._frames += 1
        return self._encode(lead + dumps(data))

    def close(self) -> bytes:
        return self._encode(b"[[]]" if self._frames == 0 else b"]]", final=True)
