"""The Responses API as a translation: each request field to chat completions or a 400
naming it, and each answer (whole or streamed) to the Response object and its events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from coordinator.protocol import responses as rs
from coordinator.protocol.errors import InvalidRequest
from coordinator.protocol.link import FinishReason, ReasoningDelta, TextDelta, ToolCall, Usage
from tests.support import schemas
from tests.support.answers import chat_completion, chat_stream, sse

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def translate(**body: Any) -> rs.Translated:
    body.setdefault("input", "hi")
    return rs.translate(json.dumps(body).encode())


def refused(**body: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        translate(**body)
    return caught.value


def test_a_string_input_with_instructions_is_a_system_and_a_user_message() -> None:
    chat = translate(model="m", instructions="Be brief.", input="hello").chat
    assert chat["model"] == "m"
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
    ]
    assert chat["stream"] is False


def test_input_items_become_chat_messages() -> None:
    chat = translate(
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "look"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
                ],
            },
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thought"}]},
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "call_2", "name": "g", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "one"},
            {
                "type": "function_call_output",
                "call_id": "call_2",
                "output": [{"type": "input_text", "text": "two"}],
            },
            {"role": "assistant", "content": [{"type": "output_text", "text": "done", "annotations": []}]},
        ]
    ).chat
    user, calls, out1, out2, assistant = chat["messages"]
    assert user == {
        "role": "user",
        "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
        ],
    }
    assert calls["role"] == "assistant"
    assert calls["reasoning_content"] == "thought"  # thinking handed back rides with its turn
    assert [c["id"] for c in calls["tool_calls"]] == ["call_1", "call_2"]  # one turn, two calls
    assert out1 == {"role": "tool", "tool_call_id": "call_1", "content": "one"}
    assert out2 == {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "two"}]}
    assert assistant == {"role": "assistant", "content": [{"type": "text", "text": "done"}]}


def test_tools_choice_reasoning_format_and_sampling_are_translated() -> None:
    chat = translate(
        tools=[
            {
                "type": "function",
                "name": "f",
                "description": "d",
                "parameters": {"type": "object"},
                "strict": True,
            }
        ],
        tool_choice={"type": "function", "name": "f"},
        parallel_tool_calls=False,
        reasoning={"effort": "low", "summary": "auto"},
        text={"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
        max_output_tokens=100,
        temperature=0.5,
        top_p=0.9,
        stream=True,
        metadata={"k": "v"},
        user="u",
    ).chat
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True},
        }
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert chat["parallel_tool_calls"] is False
    assert chat["reasoning_effort"] == "low"
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
    }
    assert (chat["max_completion_tokens"], chat["temperature"], chat["top_p"]) == (100, 0.5, 0.9)
    assert chat["stream"] is True
    assert chat["stream_options"] == {"include_usage": True}
    assert (chat["metadata"], chat["user"]) == ({"k": "v"}, "u")


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id", "unsupported_parameter"),
        ({"store": True}, "store", "unsupported_parameter"),
        ({"conversation": "conv_1"}, "conversation", "unsupported_parameter"),
        ({"background": True}, "background", "unsupported_parameter"),
        ({"truncation": "auto"}, "truncation", "unsupported_parameter"),
        ({"top_logprobs": 3}, "top_logprobs", "unsupported_parameter"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type", "unsupported_parameter"),
        ({"tool_choice": {"type": "web_search"}}, "tool_choice", "unsupported_parameter"),
        ({"text": {"verbosity": "low"}}, "text.verbosity", "unsupported_parameter"),
        ({"include": ["message.output_text.logprobs"]}, "include[0]", "unsupported_parameter"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type", "unsupported_parameter"),
        ({"input": [{"type": "computer_call"}]}, "input[0].type", "unsupported_parameter"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].type",
            "unsupported_parameter",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].file_id",
            "unsupported_parameter",
        ),
        (
            {"stream_options": {"include_obfuscation": True}},
            "stream_options.include_obfuscation",
            "unsupported_parameter",
        ),
        ({"stream_options": {"include_usage": True}}, "stream_options.include_usage", "unknown_parameter"),
        ({"frobnicate": 1}, "frobnicate", "unknown_parameter"),
        ({"input": [{"role": "user", "content": "x", "extra": 1}]}, "input[0].extra", "unknown_parameter"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role", "invalid_request"),
        ({"input": []}, "input", "invalid_request"),
        ({"temperature": 3}, "temperature", "invalid_request"),
        ({"max_output_tokens": 0}, "max_output_tokens", "invalid_request"),
        ({"stream": "yes"}, "stream", "invalid_request"),
        ({"metadata": {"k": 1}}, "metadata", "invalid_request"),
    ],
)
def test_what_is_not_honoured_is_refused_naming_it(body: dict[str, Any], param: str, code: str) -> None:
    error = refused(**body)
    assert (error.status, error.param, error.code) == (400, param, code)


def test_fields_sent_switched_off_pass() -> None:
    translate(
        store=False,
        previous_response_id=None,
        truncation="disabled",
        top_logprobs=0,
        service_tier="auto",
        include=["reasoning.encrypted_content"],
        stream_options={"include_obfuscation": False},
    )


def test_a_body_that_is_not_json_is_invalid_json() -> None:
    with pytest.raises(InvalidRequest) as caught:
        rs.translate(b"[1")
    assert caught.value.code == "invalid_json"


SHAPE = rs.Shape("req_1", 1_700_000_000, translate(model="mock", metadata={"k": "v"}))


def test_a_whole_answer_is_a_valid_response_with_reasoning_text_and_usage() -> None:
    completion = chat_completion([ReasoningDelta("thought"), TextDelta("hello")], usage=Usage(7, 5, 2))
    response = rs.response_of(completion, SHAPE)
    schemas.assert_valid(schemas.RESPONSE, response)
    parsed = Response.model_validate(response)
    assert parsed.id == "resp_req_1"
    assert parsed.status == "completed"
    assert [item.type for item in parsed.output] == ["reasoning", "message"]
    assert parsed.output_text == "hello"
    assert response["output"][0]["summary"] == [{"type": "summary_text", "text": "thought"}]
    assert response["usage"] == {
        "input_tokens": 7,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 12,
    }
    assert response["metadata"] == {"k": "v"}


def test_a_whole_tool_call_is_a_function_call_item_without_an_empty_message() -> None:
    completion = chat_completion([ToolCall("call_9", "f", '{"a":1}')], FinishReason.TOOL_CALLS)
    response = rs.response_of(completion, SHAPE)
    schemas.assert_valid(schemas.RESPONSE, response)
    Response.model_validate(response)
    (call,) = response["output"]
    assert (call["type"], call["call_id"], call["name"], call["arguments"]) == (
        "function_call",
        "call_9",
        "f",
        '{"a":1}',
    )


def test_a_length_finish_is_incomplete_for_max_output_tokens() -> None:
    response = rs.response_of(chat_completion([TextDelta("cut")], FinishReason.LENGTH), SHAPE)
    schemas.assert_valid(schemas.RESPONSE, response)
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete"


def stream(body: bytes, *, split: int | None = None) -> list[tuple[str | None, dict[str, Any]]]:
    encoder = rs.ResponseStream(SHAPE)
    out = encoder.start()
    pieces = [body] if split is None else [body[i : i + split] for i in range(0, len(body), split)]
    for piece in pieces:
        out += encoder.feed(piece)
    out += encoder.close()
    events = sse(out)
    for name, data in events:
        assert name == data["type"]
        EVENTS.validate_python(data)  # each event as the openai package types it
        schemas.assert_valid(schemas.RESPONSE_STREAM_EVENT, data)  # and as OpenAI's schema has it
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    return events


def test_a_stream_opens_each_item_streams_it_and_closes_it_in_order() -> None:
    body = chat_stream([ReasoningDelta("a "), ReasoningDelta("b"), TextDelta("x "), TextDelta("y")])
    kinds = [name for name, _ in stream(body, split=7)]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]


def test_the_completed_event_holds_the_whole_response() -> None:
    body = chat_stream(
        [TextDelta("x "), TextDelta("y"), ToolCall("call_1", "f", "{}")], FinishReason.TOOL_CALLS
    )
    events = stream(body)
    name, last = events[-1]
    assert name == "response.completed"
    response = Response.model_validate(last["response"])
    assert [item.type for item in response.output] == ["message", "function_call"]
    assert response.output_text == "x y"
    assert response.usage is not None
    assert response.usage.total_tokens == 12
    done = [data for name, data in events if name == "response.function_call_arguments.done"]
    assert done[0]["arguments"] == "{}"


def test_a_length_finish_ends_with_response_incomplete() -> None:
    (name, last) = stream(chat_stream([TextDelta("cut")], FinishReason.LENGTH))[-1]
    assert name == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_a_stream_that_breaks_ends_with_response_failed() -> None:
    body = chat_stream([TextDelta("x")])
    cut = body[: body.index(b"[DONE]") - 6]  # no [DONE]: the child went away
    (name, last) = stream(cut)[-1]
    assert name == "response.failed"
    assert last["response"]["status"] == "failed"
    assert last["response"]["error"]["code"] == "server_error"
    assert last["response"]["output"][0]["status"] == "incomplete"


def test_the_response_echoes_every_request_field_as_openais_schema_has_it() -> None:
    translated = translate(
        model="mock",
        instructions="x",
        tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        tool_choice="required",
        parallel_tool_calls=False,
        reasoning={"effort": "low", "summary": "auto"},
        text={"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}},
        max_output_tokens=5,
        temperature=0.3,
        top_p=0.5,
        metadata={"a": "b"},
        user="u",
        include=["reasoning.encrypted_content"],
    )
    shape = rs.Shape("req_2", 1_700_000_000, translated)
    completion = chat_completion([ReasoningDelta("t"), TextDelta("x"), ToolCall("call_1", "f", "{}")])
    response = rs.response_of(completion, shape)
    schemas.assert_valid(schemas.RESPONSE, response)
    assert response["tools"] == [
        {
            "type": "function",
            "name": "f",
            "description": None,
            "parameters": {"type": "object"},
            "strict": None,
        }
    ]
    assert response["output"][0]["encrypted_content"] is None
