"""The plan for a request's tools, the answer held to it, and the tool loop as text."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from child.engines.base import NotSupported
from child.output_check import InvalidOutput
from child.site.driver import conversation_text
from child.site.tools import JSON_OBJECT, PROMPTED, ToolPlan, held_to_plan, plan_tools
from coordinator.protocol.link import AnswerEvent, Finish, FinishReason, TextDelta, ToolCall
from coordinator.protocol.request import (
    ChatOptions,
    FunctionTool,
    OutputFormat,
    OutputKind,
    ToolChoice,
    ToolMode,
)

STRICT = {"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": False}
WEATHER = FunctionTool("get_weather", "The weather", STRICT, strict=True)
TIME = FunctionTool("get_time")


def test_no_tools_means_both_toggles_off_and_nothing_said() -> None:
    plan = plan_tools(ChatOptions())
    assert plan.page.off and plan.instruction == "" and plan.labels == {}


def test_declarations_go_to_the_page_with_the_full_schema_in_the_description_when_loosened() -> None:
    plan = plan_tools(ChatOptions(tools=(WEATHER, TIME)))
    declared = json.loads(plan.page.functions or "")
    assert [d["name"] for d in declared] == ["get_weather", "get_time"]
    assert declared[0]["parameters"] == {"type": "object", "properties": {"city": {"type": "string"}}}
    assert declared[0]["description"].startswith("The weather\n\nThe arguments follow this JSON Schema: ")
    assert '"additionalProperties":false' in declared[0]["description"]
    assert declared[1] == {"name": "get_time"}
    assert plan.adapted == ("additionalProperties",) and plan.labels == {"tools": "adapted"}
    assert plan.instruction == "" and not plan.require_call and not plan.first_call_only


def test_tool_choice_none_auto_required_and_named() -> None:
    tools = (WEATHER, TIME)
    none = plan_tools(ChatOptions(tools=tools, tool_choice=ToolChoice(ToolMode.NONE)))
    assert none.page.functions is None and none.labels == {}
    required = plan_tools(ChatOptions(tools=tools, tool_choice=ToolChoice(ToolMode.REQUIRED)))
    assert [d["name"] for d in json.loads(required.page.functions or "")] == ["get_weather", "get_time"]
    assert required.instruction == "\n\n(Answer with a function call.)" and required.require_call
    assert required.labels["emulated"] == "tool_choice"
    named = plan_tools(ChatOptions(tools=tools, tool_choice=ToolChoice(ToolMode.REQUIRED, "get_time")))
    assert [d["name"] for d in json.loads(named.page.functions or "")] == ["get_time"]
    assert named.instruction == "\n\n(Answer with a function call of get_time.)"
    serial = plan_tools(ChatOptions(tools=tools, parallel_tool_calls=False))
    assert serial.first_call_only and serial.labels["emulated"] == "parallel_tool_calls"


def test_output_formats_become_the_pages_schema() -> None:
    loose = plan_tools(ChatOptions(output=OutputFormat(OutputKind.JSON_OBJECT)))
    assert json.loads(loose.page.schema or "") == JSON_OBJECT and loose.page.functions is None
    schema = {"type": "object", "properties": {"n": {"const": 1}}}
    strict = plan_tools(ChatOptions(output=OutputFormat(OutputKind.JSON_SCHEMA, "N", schema, True)))
    assert json.loads(strict.page.schema or "") == {"type": "object", "properties": {"n": {"enum": [1]}}}


RECURSIVE = {"$defs": {"T": {"properties": {"t": {"$ref": "#/$defs/T"}}}}, "$ref": "#/$defs/T"}


def test_a_function_the_page_cannot_take_is_offered_through_the_prompt_labelled() -> None:
    plan = plan_tools(
        ChatOptions(tools=(TIME, FunctionTool("1st"), FunctionTool("tree", "A tree", RECURSIVE)))
    )
    assert [d["name"] for d in json.loads(plan.page.functions or "")] == ["get_time"]
    assert plan.prompted == ("1st", "tree")
    assert plan.preamble.startswith(PROMPTED + ' [{"name": "1st"}, {"name": "tree", "description": "A tree"')
    assert "<tool_call>" in plan.preamble and plan.preamble.endswith("\n\n")
    assert plan.labels == {"tools": "page", "emulated": "tools"}
    alone = plan_tools(ChatOptions(tools=(FunctionTool("1st"),)))
    assert alone.page.functions is None and alone.labels == {"tools": "prompt", "emulated": "tools"}


async def test_calls_written_as_the_prompt_asked_become_calls() -> None:
    plan = plan_tools(ChatOptions(tools=(FunctionTool("1st"),)))
    line = '<tool_call>{"name": "1st", "arguments": {"a": 1}}</tool_call>'
    events = await collected(plan, TextDelta("Sure.\n" + line[:20]), TextDelta(line[20:]), Finish())
    assert [type(e) for e in events] == [TextDelta, ToolCall, Finish]
    text, call, finish = events
    assert isinstance(text, TextDelta) and text.text == "Sure."
    assert isinstance(call, ToolCall) and (call.name, json.loads(call.arguments)) == ("1st", {"a": 1})
    assert isinstance(finish, Finish) and finish.reason is FinishReason.TOOL_CALLS
    # A line naming a function not offered stays the text it is; so does plain text.
    other = '<tool_call>{"name": "rm", "arguments": {}}</tool_call>'
    assert await collected(plan, TextDelta(other), Finish()) == [TextDelta(other), Finish()]


def test_an_output_schema_the_page_cannot_hold_is_a_400_naming_the_field() -> None:
    recursive = RECURSIVE
    with pytest.raises(NotSupported) as refused:
        plan_tools(ChatOptions(output=OutputFormat(OutputKind.JSON_SCHEMA, "T", recursive)))
    assert refused.value.param == "response_format.json_schema.schema" and refused.value.status == 400


async def collected(plan: ToolPlan, *events: AnswerEvent) -> list[AnswerEvent]:
    async def source() -> AsyncIterator[AnswerEvent]:
        for event in events:
            yield event

    return [event async for event in held_to_plan(source(), plan)]


async def test_only_the_first_call_when_parallel_calls_are_off() -> None:
    one, two = ToolCall("a", "f", "{}"), ToolCall("b", "g", "{}")
    finish = Finish(FinishReason.TOOL_CALLS)
    assert await collected(ToolPlan(), one, two, finish) == [one, two, finish]
    assert await collected(ToolPlan(first_call_only=True), one, two, finish) == [one, finish]


async def test_a_required_call_that_never_came_is_invalid_output() -> None:
    with pytest.raises(InvalidOutput, match="without the function call tool_choice requires"):
        await collected(ToolPlan(require_call=True), TextDelta("no"), Finish())
    call = ToolCall("a", "f", "{}")
    assert await collected(ToolPlan(require_call=True), call, Finish()) == [call, Finish()]


def test_the_tool_loop_goes_to_the_page_whole() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "21 degrees"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
        {"role": "assistant", "content": None, "function_call": {"name": "old_style", "arguments": "{}"}},
        {"role": "function", "name": "old_style", "content": "done"},
    ]  # fmt: skip
    assert conversation_text(messages) == "\n\n".join(
        [
            "User: weather?",
            'Assistant: Let me look.\ncalls get_weather [id call_1] with arguments {"city":"Paris"}\n'
            "calls get_time [id call_2] with arguments {}",
            "Tool result of get_weather [id call_1]: 21 degrees",
            "Tool result of get_time [id call_2]: noon",
            "Assistant: calls old_style with arguments {}",
            "Tool result of old_style: done",
        ]
    )
