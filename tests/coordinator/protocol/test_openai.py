"""The OpenAI wire format: request validation, error shapes, answers built from events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from coordinator.ledger.entry import NO_TOKENS, Tokens, usage_in
from coordinator.protocol.link import Citation, FinishReason, ReasoningDelta, TextDelta, ToolCall, Usage
from coordinator.protocol.openai import (
    Answer,
    Delta,
    InvalidRequest,
    error_body,
    message_text,
    parse_chat_request,
    sse_error,
    without_usage_note,
)


def test_a_valid_request() -> None:
    raw = json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True,
         "stream_options": {"include_usage": True}}
    ).encode()  # fmt: skip
    chat = parse_chat_request(raw)
    assert (chat.model, chat.stream, chat.include_usage) == ("m", True, True)


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"", None),
        (b"\xff\xfe", None),
        (b'"text"', None),
        (b'{"messages": null}', "messages"),
        (b'{"messages": {}}', "messages"),
        (b'{"messages": [1]}', "messages[0]"),
        (b'{"messages": [{"role": "robot"}]}', "messages[0].role"),
        # Found by fuzzing: a role that is an object once raised TypeError (a 500).
        (b'{"messages": [{"role": {"a": 1}}]}', "messages[0].role"),
        (b'{"messages": [{"role": ["user"]}]}', "messages[0].role"),
        (b'{"messages": [{"role": "user", "content": 5}]}', "messages[0].content"),
        (b'{"messages": [{"role": "user"}], "model": 3}', "model"),
        (b'{"messages": [{"role": "user"}], "stream": 1}', "stream"),
        (b'{"messages": [{"role": "user"}], "stream_options": []}', "stream_options"),
    ],
)
def test_invalid_requests_name_the_parameter(raw: bytes, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_chat_request(raw)
    assert caught.value.param == param
    assert caught.value.message


def user(content: object) -> bytes:
    return json.dumps({"messages": [{"role": "user", "content": content}]}).encode()


@pytest.mark.parametrize(
    ("raw", "param", "words"),
    [
        (user([{"type": "text", "text": None}]), "messages[0].content[0].text", "must be a string"),
        (user([{"type": "text", "text": 5}]), "messages[0].content[0].text", "must be a string"),
        (user(["hi"]), "messages[0].content[0]", "must be an object"),
        (user([{"text": "hi"}]), "messages[0].content[0].type", "use one of text"),
        (user([{"type": "video", "text": "hi"}]), "messages[0].content[0].type", "use one of text"),
        (user([{"type": "text", "text": "see"}, {"type": "image_url", "image_url": {"url": "data:"}}]),
         "messages[0].content[1].image_url.url", "must be a data: URL"),
        (user([{"type": "input_audio", "input_audio": {}}]), "messages[0].content[0].input_audio.format",
         "must be one of wav, mp3"),
        (user(""), "messages", "prompt is empty"),
        (user(" \n\t "), "messages", "prompt is empty"),
        (user([]), "messages", "prompt is empty"),
        (json.dumps({"messages": [{"role": "assistant", "content": None}]}).encode(), "messages", "empty"),
        (b'{"messages": [{"role": "user", "content": "\\ud800"}]}', "messages[0].content", "lone surrogate"),
        (b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "a\\udfffb"}]}]}',
         "messages[0].content[0].text", "lone surrogate"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "model": "\\udc80"}', "model", "lone surrogate"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "x": {"\\ud800": 1}}', "x", "lone surrogate"),
        (b'{"messages": [{"role": "user", "content": "\xed\xa0\x80"}]}', None, "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, None, "nested too deeply"),
        (b'{"messages": ' + b"[" * 100_000, None, "nested too deeply"),
    ],
)  # fmt: skip
def test_content_a_child_could_not_read_is_refused_naming_the_part(
    raw: bytes, param: str | None, words: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_chat_request(raw)
    assert (caught.value.status, caught.value.param) == (400, param)
    assert words in caught.value.message


def test_valid_unicode_and_text_parts_pass() -> None:
    pair = (
        b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "\\ud83d\\ude00 \\\\ud800"}]}]}'
    )
    chat = parse_chat_request(pair)
    assert message_text(chat.body["messages"][0]) == "\U0001f600 \\ud800"  # a pair, and an escaped backslash
    refusal = [{"type": "refusal", "refusal": "no"}]
    history = [{"role": "assistant", "content": refusal}, {"role": "user", "content": "go on"}]
    assert parse_chat_request(json.dumps({"messages": history}).encode())


def test_error_shapes() -> None:
    assert error_body("nope", status=429, code="queue_full") == {
        "error": {"message": "nope", "type": "rate_limit_error", "param": None, "code": "queue_full"}
    }
    assert error_body("down", status=503)["error"]["type"] == "server_error"
    event = sse_error("broke", status=502, code="child_failed")
    assert event.startswith(b"data: {") and event.endswith(b"\n\n")
    assert json.loads(event[6:])["error"]["code"] == "child_failed"


def test_message_text_of_parts() -> None:
    message = {
        "role": "user",
        "content": [{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}],
    }
    assert message_text(message) == "a\nb"  # paragraphs: "one two" + "three" is not "one twothree"
    assert message_text({"role": "assistant", "content": None}) == ""


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 2),  # a child's parser: only the coordinator fans out
        ("logprobs", True),
        ("top_logprobs", 3),
        ("audio", {"voice": "alloy", "format": "mp3"}),
        ("modalities", ["text", "audio"]),
        ("seed", 7),
        ("presence_penalty", 0.5),
    ],
)
def test_what_nothing_honours_is_refused_naming_it(field: str, value: object) -> None:
    raw = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], field: value}).encode()
    with pytest.raises(InvalidRequest) as caught:
        parse_chat_request(raw)
    assert (caught.value.status, caught.value.code, caught.value.param) == (
        400,
        "unsupported_parameter",
        field,
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("tools", []), ("tool_choice", "none"), ("n", 1), ("logprobs", False),
     ("response_format", {"type": "text"}), ("modalities", ["text"]), ("presence_penalty", 0),
     ("user", "alice"), ("metadata", {"k": "v"})],
)  # fmt: skip
def test_a_field_sent_switched_off_asks_for_nothing_and_passes(field: str, value: object) -> None:
    raw = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], field: value}).encode()
    assert parse_chat_request(raw).body[field] == value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 2.5),
        ("temperature", "hot"),
        ("top_p", -0.1),
        ("max_tokens", 0),
        ("max_completion_tokens", 1.5),
        ("stop", ["a", "b", "c", "d", "e"]),
        ("stop", [""]),
        ("stop", 3),
    ],
)
def test_bad_run_settings_are_refused(field: str, value: object) -> None:
    raw = json.dumps({"messages": [{"role": "user", "content": "hi"}], field: value}).encode()
    with pytest.raises(InvalidRequest) as caught:
        parse_chat_request(raw)
    assert caught.value.param == field


def test_run_settings_prefer_max_completion_tokens() -> None:
    from coordinator.protocol.openai import RunSettings, run_settings

    body = {"temperature": 0.2, "top_p": 1, "max_tokens": 9, "max_completion_tokens": 5, "stop": "END"}
    assert run_settings(body) == RunSettings(temperature=0.2, top_p=1, max_tokens=5, stop=("END",))
    assert run_settings({}) == RunSettings()


# -- building answers from answer events -------------------------------------------------

ANSWER = Answer("r1", "m", created=1700000000, include_usage=True)
USAGE = Usage(prompt=7, completion=5, reasoning=2)
CALL = ToolCall("call_1", "get_weather", '{"city": "Paris"}')


def _events(raw: bytes) -> list[Any]:
    """The JSON payloads of an SSE body, `[DONE]` as the string."""
    payloads: list[Any] = []
    for event in raw.split(b"\n\n"):
        if event and not event.startswith(b":"):  # a comment, which SSE readers skip
            assert event.startswith(b"data: ")
            data = event.removeprefix(b"data: ")
            payloads.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return payloads


def _stream(events: list[Delta], reason: FinishReason, answer: Answer = ANSWER) -> list[Any]:
    stream = answer.stream()
    raw = b"".join(stream.delta(event) for event in events) + stream.end(reason, USAGE)
    return _events(raw)


def test_a_completion_with_reasoning_carries_it_beside_the_content() -> None:
    body = ANSWER.completion(
        [ReasoningDelta("think"), ReasoningDelta(" hard"), TextDelta("an"), TextDelta("swer")],
        FinishReason.STOP,
        USAGE,
    )
    assert body["id"] == "chatcmpl-r1"
    assert body["object"] == "chat.completion"
    (choice,) = body["choices"]
    assert choice["message"] == {
        "role": "assistant",
        "content": "answer",
        "refusal": None,
        "reasoning_content": "think hard",
    }
    assert choice["finish_reason"] == "stop"
    assert body["usage"] == {
        "prompt_tokens": 7,
        "completion_tokens": 5,
        "total_tokens": 12,
        "completion_tokens_details": {"reasoning_tokens": 2},
    }


def test_a_completion_with_a_tool_call_has_null_content() -> None:
    body = ANSWER.completion([CALL], FinishReason.TOOL_CALLS, USAGE)
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["refusal"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]


def test_an_empty_completion_has_empty_content() -> None:
    body = ANSWER.completion([], FinishReason.LENGTH, USAGE)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "", "refusal": None}
    assert body["choices"][0]["finish_reason"] == "length"


def test_a_stream_opens_with_the_role_and_ends_with_finish_usage_and_done() -> None:
    chunks = _stream([ReasoningDelta("hm"), TextDelta("a"), TextDelta(" b")], FinishReason.LENGTH)
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks[:3]]
    assert deltas == [
        {"role": "assistant", "content": "", "reasoning_content": "hm"},
        {"content": "a"},
        {"content": " b"},
    ]
    assert chunks[3]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "length", "logprobs": None}]
    assert chunks[4]["choices"] == []
    assert chunks[4]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 2}
    assert chunks[4]["usage"]["total_tokens"] == 12
    assert chunks[5] == "[DONE]"
    assert {chunk["id"] for chunk in chunks[:5]} == {"chatcmpl-r1"}
    assert {chunk["object"] for chunk in chunks[:5]} == {"chat.completion.chunk"}


def test_streamed_tool_calls_are_numbered_in_order() -> None:
    second = ToolCall("call_2", "get_time", "{}")
    chunks = _stream([CALL, second], FinishReason.TOOL_CALLS)
    first_delta = chunks[0]["choices"][0]["delta"]
    assert first_delta["role"] == "assistant"
    assert first_delta["content"] is None
    assert first_delta["tool_calls"] == [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert chunks[1]["choices"][0]["delta"]["tool_calls"][0]["index"] == 1
    assert chunks[2]["choices"][0]["finish_reason"] == "tool_calls"


def test_an_empty_stream_still_sends_the_role_and_no_usage_unless_asked() -> None:
    answer = Answer("r2", "m", created=0)
    chunks = _stream([], FinishReason.STOP, answer)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[2:] == ["[DONE]"]


def test_a_stream_without_usage_asked_tells_the_ledger_in_a_note_the_client_never_sees() -> None:
    stream = Answer("r3", "m", created=0).stream()
    raw = stream.delta(TextDelta("hi")) + stream.end(FinishReason.STOP, USAGE)
    assert usage_in(raw) == Tokens(prompt=7, completion=5, reasoning=2)
    sent = without_usage_note(raw)
    assert b"usage" not in sent and usage_in(sent) == NO_TOKENS
    assert [event for event in raw.split(b"\n\n") if not event.startswith(b":")] == sent.split(b"\n\n")
    # Split between two reads, the note stays a comment: never a half-cut event.
    at = raw.index(b": usage") + 4
    assert without_usage_note(raw[:at]) == raw[:at] and without_usage_note(raw[at:]) == raw[at:]


CITATION = Citation("https://a.test/", "A page", 0, 6)
URL_CITATION = {
    "type": "url_citation",
    "url_citation": {"start_index": 0, "end_index": 6, "title": "A page", "url": "https://a.test/"},
}


def test_citations_are_url_citation_annotations_on_the_message() -> None:
    body = ANSWER.completion([TextDelta("answer"), CITATION], FinishReason.STOP, USAGE)
    assert body["choices"][0]["message"]["annotations"] == [URL_CITATION]
    assert (
        "annotations"
        not in ANSWER.completion([TextDelta("a")], FinishReason.STOP, USAGE)["choices"][0]["message"]
    )


def test_streamed_citations_are_an_annotations_delta_of_their_own() -> None:
    chunks = _stream([TextDelta("answer"), CITATION], FinishReason.STOP)
    assert chunks[1]["choices"][0]["delta"] == {"annotations": [URL_CITATION]}
