"""What a chat request asks beyond text: tools, tool choice, output format, reasoning,
search and files, typed, or refused with a 400 that names the field."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from coordinator.protocol.openai import InvalidRequest, parse_chat_request
from coordinator.protocol.request import (
    MAX_ATTACHMENTS,
    FunctionTool,
    OutputKind,
    ToolChoice,
    ToolMode,
)

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(24)).decode()


def body(**fields: Any) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}).encode()


def refused(raw: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse_chat_request(raw)
    assert caught.value.status == 400
    return caught.value


def test_tools_and_tool_choice_are_typed() -> None:
    options = parse_chat_request(
        body(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}})
    ).options
    assert options.tools == (FunctionTool("get_weather", "", {"type": "object"}),)
    assert options.tool_choice == ToolChoice(ToolMode.REQUIRED, "get_weather")
    assert options.calls_tools
    assert not parse_chat_request(body(tools=[WEATHER], tool_choice="none")).options.calls_tools


def test_the_older_functions_form_is_read_as_tools() -> None:
    options = parse_chat_request(
        body(functions=[{"name": "f", "description": "d"}], function_call={"name": "f"})
    ).options
    assert options.tools == (FunctionTool("f", "d"),)
    assert options.tool_choice == ToolChoice(ToolMode.REQUIRED, "f")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
        ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools[0].function.name"),
        ({"tools": [WEATHER, WEATHER]}, "tools[1].function.name"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]},
         "tools[0].function.parameters"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "other"}}},
         "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
         "response_format.json_schema.schema"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"web_search_options": {"search_context_size": "high"}}, "web_search_options.search_context_size"),
        ({"url_context": "yes"}, "url_context"),
        ({"parallel_tool_calls": "no"}, "parallel_tool_calls"),
    ],
)  # fmt: skip
def test_a_bad_option_is_refused_naming_the_field(fields: dict[str, Any], param: str) -> None:
    assert refused(body(**fields)).param == param


def test_output_format_and_search_are_typed() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    options = parse_chat_request(
        body(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "A", "schema": schema, "strict": True},
            },
            reasoning_effort="high",
            web_search_options={},
            url_context=True,
        )
    ).options
    assert (options.output.kind, options.output.schema, options.output.strict) == (
        OutputKind.JSON_SCHEMA,
        schema,
        True,
    )
    assert (options.reasoning_effort, options.web_search, options.url_context) == ("high", True, True)


def user_parts(*parts: dict[str, Any]) -> bytes:
    return json.dumps(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "see"}, *parts]}]}
    ).encode()


def test_files_in_parts_become_attachments() -> None:
    chat = parse_chat_request(
        user_parts(
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "auto"}},
            {
                "type": "file",
                "file": {"file_data": f"data:application/pdf;base64,{PNG}", "filename": "a.pdf"},
            },
            {"type": "input_audio", "input_audio": {"data": PNG, "format": "mp3"}},
        )
    )
    assert [(a.message, a.mime_type, a.name) for a in chat.attachments] == [
        (0, "image/png", "image-1.png"),
        (0, "application/pdf", "a.pdf"),
        (0, "audio/mpeg", "audio-3.mp3"),
    ]
    assert chat.attachments[0].data == base64.b64decode(PNG)


def test_a_lone_image_is_a_prompt() -> None:
    raw = json.dumps(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}],
                }
            ]
        }
    ).encode()
    assert len(parse_chat_request(raw).attachments) == 1


@pytest.mark.parametrize(
    ("part", "param", "code"),
    [
        ({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}, "image_url.url",
         "unsupported_parameter"),
        ({"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}},
         "image_url.detail", "unsupported_parameter"),
        ({"type": "image_url", "image_url": {"url": "data:image/png;base64,not base64!"}}, "image_url.url",
         "invalid_request"),
        ({"type": "image_url", "image_url": {"url": f"data:application/pdf;base64,{PNG}"}}, "image_url.url",
         "invalid_request"),
        ({"type": "image_url", "image_url": {"url": f"data:video/mp4;base64,{PNG}"}}, "image_url.url",
         "unsupported_parameter"),
        ({"type": "file", "file": {"file_id": "file-1"}}, "file.file_id", "unsupported_parameter"),
        ({"type": "file", "file": {"file_data": PNG}}, "file.file_data", "invalid_request"),
    ],
)  # fmt: skip
def test_a_file_that_cannot_be_attached_is_refused_naming_it(
    part: dict[str, Any], param: str, code: str
) -> None:
    error = refused(user_parts(part))
    assert (error.param, error.code) == (f"messages[0].content[1].{param}", code)


def test_at_most_so_many_files_go_with_one_prompt() -> None:
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    assert refused(user_parts(*[image] * (MAX_ATTACHMENTS + 1))).param == "messages"


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ({"role": "tool", "content": "18C"}, "messages[1].tool_call_id"),
        ({"role": "user", "content": "hi", "tool_calls": []}, "messages[1].tool_calls"),
        ({"role": "assistant", "content": None, "tool_calls": [{"type": "function"}]},
         "messages[1].tool_calls[0]"),
        ({"role": "assistant", "content": None,
          "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}]},
         "messages[1].tool_calls[0].function.arguments"),
        ({"role": "user", "content": "hi", "name": 3}, "messages[1].name"),
        ({"role": "function", "content": "x"}, "messages[1].name"),
        ({"role": "user", "content": "x", "weight": 2}, "messages[1].weight"),
        ({"role": "assistant", "content": "x", "audio": {"id": "audio_1"}}, "messages[1].audio"),
    ],
)  # fmt: skip
def test_history_fields_are_checked(message: dict[str, Any], param: str) -> None:
    raw = json.dumps({"messages": [{"role": "user", "content": "hi"}, message]}).encode()
    assert refused(raw).param == param


def test_an_answer_appended_to_the_history_as_it_came_passes() -> None:
    echoed: dict[str, Any] = {
        "role": "assistant",
        "content": "hi",
        "refusal": None,
        "annotations": [],
        "audio": None,
        "function_call": None,
        "tool_calls": None,
        "reasoning_content": "thought",
        "parsed": None,
    }
    raw = json.dumps({"messages": [{"role": "user", "content": "hi"}, echoed]}).encode()
    assert parse_chat_request(raw).body["messages"][1] == echoed


def test_a_tools_loop_history_passes() -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    raw = json.dumps(
        {
            "tools": [WEATHER],
            "messages": [
                {"role": "user", "content": "weather?", "name": "alice"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            ],
        }
    ).encode()
    assert parse_chat_request(raw).options.tools[0].name == "get_weather"
