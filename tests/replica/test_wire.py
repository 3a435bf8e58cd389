"""The json+protobuf wire format, built and read without a server: parts, values, frames,
the incremental body (plain and gzip), and the request the page sends."""

from __future__ import annotations

import json
import secrets
import zlib
from typing import Any

import pytest

from child.replica import Finish, Usage
from child.replica.wire import (
    BodyWriter,
    GenerateRequest,
    Turn,
    WireError,
    encode_request,
    error_body,
    frame,
    function_call_part,
    parse_request,
    signature_part,
    text_part,
    thought_part,
    value,
)


def test_parts_have_the_positions_readers_look_at() -> None:
    assert text_part("hi") == [None, "hi"]
    thought = thought_part("hmm")
    assert (len(thought), thought[1], thought[12]) == (13, "hmm", True)
    signature = signature_part("c2ln")
    assert (len(signature), signature[1], signature[14]) == (15, None, "c2ln")
    call = function_call_part("lookup", {"q": "x"})
    assert (len(call), call[10]) == (11, ["lookup", [[["q", [None, None, "x"]]]]])


@pytest.mark.parametrize(
    ("item", "encoded"),
    [
        (None, [0]),
        (1.5, [None, 1.5]),
        (3, [None, 3]),
        ("s", [None, None, "s"]),
        (True, [None, None, None, True]),
        ({"k": False}, [None, None, None, None, [[["k", [None, None, None, False]]]]]),
        ([1, "a"], [None, None, None, None, None, [[[None, 1], [None, None, "a"]]]]),
    ],
)
def test_a_value_is_typed_by_its_length(item: Any, encoded: list[Any]) -> None:
    assert value(item) == encoded


def test_frames_candidates_and_usage() -> None:
    assert frame([text_part("a")]) == [[[[[[None, "a"]], "model"]]]]
    last = frame([text_part("b")], Finish.MAX_TOKENS, Usage(3, 2, 0))
    assert last == [[[[[[None, "b"]], "model"], 2]], None, [3, 2, 5]]
    thinking = frame([text_part("c")], None, Usage(3, 1, 4))
    assert thinking[2] == [3, 1, 8, None, None, None, None, None, None, 4]
    assert json.loads(error_body(8, "quota")) == [None, [8, "quota"]]


@pytest.mark.parametrize("gzip", [False, True])
def test_the_body_is_one_array_written_a_frame_at_a_time(gzip: bool) -> None:
    writer = BodyWriter(gzip)
    frames = [frame([text_part(str(i))]) for i in range(3)]
    chunks = [writer.frame(f) for f in frames] + [writer.close()]
    decoder = zlib.decompressobj(wbits=31)
    # Each chunk decodes on its own, in order: a reader sees every frame as it comes.
    seen = b""
    for index, chunk in enumerate(chunks[:-1]):
        seen += decoder.decompress(chunk) if gzip else chunk
        assert seen.endswith(json.dumps(frames[index], separators=(",", ":")).encode())
    seen += (decoder.decompress(chunks[-1]) + decoder.flush()) if gzip else chunks[-1]
    assert json.loads(seen) == [frames]
    if gzip:
        assert decoder.eof and zlib.decompress(b"".join(chunks), wbits=31) == seen
    assert json.loads(BodyWriter(False).close()) == [[]]


def sample(**changes: Any) -> GenerateRequest:
    fields: dict[str, Any] = {
        "model": "replica-pro",
        "turns": (Turn("user", "first"), Turn("model", "answer"), Turn("user", "second ☃")),
        "system": "be brief",
        "stop": ("END",),
        "max_tokens": 100,
        "temperature": 0.5,
        "top_p": 0.9,
        "nonce": secrets.token_hex(16),
        "temporary": True,
        **changes,
    }
    return GenerateRequest(**fields)


def test_a_request_reads_back_as_written() -> None:
    request = sample()
    parsed = parse_request(encode_request(request))
    assert parsed == request
    assert parsed.prompt == "second ☃"
    assert parsed.context == ("be brief", "first", "answer")
    data = json.loads(encode_request(sample(system="", stop=(), temperature=None, temporary=False)))
    assert data[0] == "models/replica-pro" and data[8] is None and data[10] is None
    assert data[3][:6] == [None, None, None, 100, None, 0.9]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b'["replica-pro", [[[[null, "x"]], "user"]], null, null, "' + b"a" * 32 + b'"]',
        b'["models/m", [], null, null, "' + b"a" * 32 + b'"]',
        b'["models/m", [[[[null, "x"]], "model"]], null, null, "' + b"a" * 32 + b'"]',
        b'["models/m", [[[[null, "x"]], "user"]], null, [null, null, null, "9"], "' + b"a" * 32 + b'"]',
        b'["models/m", [[[[null, "x"]], "user"]], null, null, "short"]',
    ],
)
def test_what_the_page_never_sends_is_refused(body: bytes) -> None:
    with pytest.raises(WireError):
        parse_request(body)
