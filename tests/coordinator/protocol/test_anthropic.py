"""Anthropic's Messages API as a translation: each request field to chat completions or a 400
naming it, each answer (whole or streamed) to a Message and its events, each error its shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from coordinator.protocol import anthropic as an
from coordinator.protocol.errors import InvalidRequest
from coordinator.protocol.link import FinishReason, ReasoningDelta, TextDelta, ToolCall, Usage
from tests.support.answers import chat_completion, chat_stream, sse

EVENTS: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
HELLO = [{"role": "user", "content": "hello"}]


def translate(**body: Any) -> an.Translated:
    body.setdefault("model", "mock")
    body.setdefault("max_tokens", 100)
    body.setdefault("messages", HELLO)
    return an.translate(json.dumps(body).encode())


def refused(**body: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        translate(**body)
    return caught.value


def test_system_messages_and_settings_are_translated() -> None:
    chat = translate(
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        stop_sequences=["END"],
        temperature=0.2,
        top_p=0.9,
        metadata={"user_id": "u-1"},
        stream=True,
    ).chat
    assert chat["model"] == "mock"
    assert chat["max_tokens"] == 100
    assert chat["messages"] == [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": "hello"},
    ]
    assert (chat["stop"], chat["temperature"], chat["top_p"], chat["user"]) == (["END"], 0.2, 0.9, "u-1")
    assert chat["stream_options"] == {"include_usage": True}


def test_blocks_images_tool_use_and_tool_results_become_chat_messages() -> None:
    chat = translate(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "s"},
                    {"type": "text", "text": "calling"},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "42"}],
                    },
                    {"type": "text", "text": "and now?"},
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_2", "name": "f", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True, "content": "boom"}
                ],
            },
        ]
    ).chat
    user, assistant, result, question, call, failed = chat["messages"]
    assert user["content"][1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    assert assistant == {
        "role": "assistant",
        "content": [{"type": "text", "text": "calling"}],
        "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
        ],
        "reasoning_content": "hm",
    }
    # A tool's result comes straight after the call, before the user's words of the same turn.
    assert result == {"role": "tool", "tool_call_id": "toolu_1", "content": "42"}
    assert question == {"role": "user", "content": [{"type": "text", "text": "and now?"}]}
    assert call["content"] is None
    assert failed == {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: boom"}


def test_tools_and_each_tool_choice_are_translated() -> None:
    tool = {
        "name": "f",
        "description": "d",
        "input_schema": {"type": "object"},
        "cache_control": {"type": "ephemeral"},
    }
    chat = translate(tools=[tool], tool_choice={"type": "any", "disable_parallel_tool_use": True}).chat
    assert chat["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "description": "d"}}
    ]
    assert (chat["tool_choice"], chat["parallel_tool_calls"]) == ("required", False)
    choices = {"auto": "auto", "none": "none"}
    for kind, expected in choices.items():
        assert translate(tools=[tool], tool_choice={"type": kind}).chat["tool_choice"] == expected
    named = translate(tools=[tool], tool_choice={"type": "tool", "name": "f"}).chat["tool_choice"]
    assert named == {"type": "function", "function": {"name": "f"}}


@pytest.mark.parametrize(
    ("budget", "effort"), [(1024, "low"), (4095, "low"), (4096, "medium"), (16383, "medium"), (16384, "high")]
)
def test_a_thinking_budget_asks_for_an_effort(budget: int, effort: str) -> None:
    chat = translate(max_tokens=32000, thinking={"type": "enabled", "budget_tokens": budget}).chat
    assert chat["reasoning_effort"] == effort


def test_adaptive_and_disabled_thinking_leave_the_pages_level() -> None:
    for kind in ("adaptive", "disabled"):
        assert "reasoning_effort" not in translate(thinking={"type": kind}).chat


def test_output_config_is_effort_and_format() -> None:
    chat = translate(
        output_config={"effort": "high", "format": {"type": "json_schema", "schema": {"type": "object"}}}
    ).chat
    assert chat["reasoning_effort"] == "high"
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": {"type": "object"}},
    }


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"top_k": 5}, "top_k", "unsupported_parameter"),
        ({"mcp_servers": [{}]}, "mcp_servers", "unsupported_parameter"),
        ({"container": "c"}, "container", "unsupported_parameter"),
        ({"service_tier": "priority"}, "service_tier", "unsupported_parameter"),
        (
            {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
            "tools[0].type",
            "unsupported_parameter",
        ),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 2000, "display": "omitted"}},
            "thinking.display",
            "unsupported_parameter",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
            "messages[0].content[0].type",
            "unsupported_parameter",
        ),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "redacted_thinking", "data": "x"}]}]},
            "messages[0].content[0].type",
            "unsupported_parameter",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "t",
                                "content": [{"type": "image", "source": {}}],
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0].content[0].type",
            "unsupported_parameter",
        ),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences", "invalid_request"),
        ({"frobnicate": 1}, "frobnicate", "unknown_parameter"),
        ({"metadata": {"user_id": "u", "other": 1}}, "metadata.other", "unknown_parameter"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role", "invalid_request"),
        ({"messages": []}, "messages", "invalid_request"),
        ({"max_tokens": 0}, "max_tokens", "invalid_request"),
        ({"temperature": 1.5}, "temperature", "invalid_request"),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 512}},
            "thinking.budget_tokens",
            "invalid_request",
        ),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 2048}},
            "thinking.budget_tokens",
            "invalid_request",
        ),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type", "invalid_request"),
    ],
)
def test_what_is_not_honoured_is_refused_naming_it(body: dict[str, Any], param: str, code: str) -> None:
    error = refused(**body)
    assert (error.status, error.param, error.code) == (400, param, code)


def test_max_tokens_is_required() -> None:
    with pytest.raises(InvalidRequest) as caught:
        an.translate(json.dumps({"model": "m", "messages": HELLO}).encode())
    assert caught.value.param == "max_tokens"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (418, "invalid_request_error"),
    ],
)
def test_errors_have_anthropics_shape_and_type_by_status(status: int, kind: str) -> None:
    assert an.error_body(status, "why") == {"type": "error", "error": {"type": kind, "message": "why"}}


def test_a_whole_answer_is_a_valid_message() -> None:
    completion = chat_completion(
        [ReasoningDelta("hm"), TextDelta("hi"), ToolCall("call_abc", "f", '{"a": 1}')],
        FinishReason.TOOL_CALLS,
    )
    message = an.message_of(completion, "req_1", "mock")
    parsed = Message.model_validate(message)
    assert parsed.id == "msg_req_1"
    assert [block.type for block in parsed.content] == ["thinking", "text", "tool_use"]
    assert message["content"][2] == {"type": "tool_use", "id": "toolu_abc", "name": "f", "input": {"a": 1}}
    assert parsed.stop_reason == "tool_use"
    assert (parsed.usage.input_tokens, parsed.usage.output_tokens) == (7, 5)


@pytest.mark.parametrize(
    ("reason", "stop"),
    [
        (FinishReason.STOP, "end_turn"),
        (FinishReason.LENGTH, "max_tokens"),
        (FinishReason.CONTENT_FILTER, "refusal"),
    ],
)
def test_finish_reasons_are_stop_reasons(reason: FinishReason, stop: str) -> None:
    assert an.message_of(chat_completion([TextDelta("x")], reason), "r", "m")["stop_reason"] == stop


def test_tool_arguments_that_are_not_an_object_cannot_be_a_tool_use() -> None:
    with pytest.raises(ValueError):
        an.message_of(chat_completion([ToolCall("c", "f", "[1]")], FinishReason.TOOL_CALLS), "r", "m")


def stream(body: bytes, *, split: int | None = None) -> list[tuple[str | None, dict[str, Any]]]:
    encoder = an.MessageStream("req_1", "mock")
    out = encoder.start()
    pieces = [body] if split is None else [body[i : i + split] for i in range(0, len(body), split)]
    for piece in pieces:
        out += encoder.feed(piece)
    out += encoder.close()
    events = sse(out)
    for name, data in events:
        assert name == data["type"]
        if name != "error":
            EVENTS.validate_python(data)  # each event as Anthropic's package types it
    return events


def test_a_stream_has_a_block_per_kind_of_output() -> None:
    body = chat_stream(
        [ReasoningDelta("a"), TextDelta("x "), TextDelta("y"), ToolCall("call_1", "f", '{"a":1}')],
        FinishReason.TOOL_CALLS,
        Usage(9, 4),
    )
    events = stream(body, split=5)
    assert [(name, data.get("index")) for name, data in events] == [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_delta", 2),
        ("content_block_stop", 2),
        ("message_delta", None),
        ("message_stop", None),
    ]
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    assert deltas[0] == {"type": "thinking_delta", "thinking": "a"}
    assert deltas[1] == {"type": "text_delta", "text": "x "}
    assert deltas[3] == {"type": "input_json_delta", "partial_json": '{"a":1}'}
    assert events[8][1]["content_block"]["id"] == "toolu_1"
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-2][1]["usage"] == {"input_tokens": 9, "output_tokens": 4}


def test_a_stream_that_breaks_ends_with_an_error_event() -> None:
    body = chat_stream([TextDelta("x")])
    cut = body[: body.index(b"data: [DONE]")]
    name, data = stream(cut)[-1]
    assert name == "error"
    assert data["error"]["type"] == "api_error"


def test_a_childs_error_event_becomes_an_error_of_its_status() -> None:
    from coordinator.protocol import openai as wire

    body = wire.sse_error("quota", status=429, code="quota_exhausted")
    name, data = stream(body)[-1]
    assert (name, data["error"]["type"]) == ("error", "rate_limit_error")
