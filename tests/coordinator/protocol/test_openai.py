"""The OpenAI wire format: request validation and error shapes."""

from __future__ import annotations

import json

import pytest

from coordinator.protocol.openai import (
    InvalidRequest,
    error_body,
    message_text,
    parse_chat_request,
    sse_error,
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
    assert message_text(message) == "ab"
    assert message_text({"role": "assistant", "content": None}) == ""


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
