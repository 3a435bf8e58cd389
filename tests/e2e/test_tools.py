"""Function calling and structured output through the page, end to end.

The coordinator, two Chromium children and the replica, with the official client: the
declarations and the schema go through the page's Tools group (the replica records what
its page sent), the model's calls come back as `tool_calls`, the whole tool loop goes back
to the page as text, and JSON answers are held to the request's schema.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)
from pydantic import BaseModel

from child.engines.browser import find_chromium
from tests.support import schemas
from tests.support.coordinator import Coordinator, Runs
from tests.support.sites import Site, site_and_profiles, start

pytestmark = [
    pytest.mark.skipif(
        find_chromium(None, os.environ) is None, reason="no Chromium: `bash scripts/setup.sh` installs it"
    ),
    pytest.mark.browser,
]

WEATHER: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
TIME: ChatCompletionToolParam = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


class Report(BaseModel):
    city: str
    degrees: int
    sunny: bool
    tags: list[str]


@pytest.fixture(scope="module")
def served(module_runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Coordinator, Site]]:
    folder = tmp_path_factory.mktemp("tools") / "profiles"
    with site_and_profiles(folder, "--first-token-ms", "20", "--token-ms", "2", "--quota-after", "0") as site:
        yield start(module_runs, site, folder), site


def client(run: Coordinator) -> openai.OpenAI:
    return run.openai(timeout=60, max_retries=0)


def called(answer: ChatCompletion) -> list[str]:
    """The names of the functions an answer calls, in order."""
    calls = answer.choices[0].message.tool_calls or ()
    return [call.function.name for call in calls if isinstance(call, ChatCompletionMessageFunctionToolCall)]


def declared(run: dict[str, Any]) -> list[str]:
    return [function["name"] for function in run["tools"]["functions"]]


def test_a_tool_loop_call_then_result_then_text(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    ask: list[ChatCompletionMessageParam] = [{"role": "user", "content": "call get_weather for Paris"}]
    answer = client(run).chat.completions.create(model="replica-flash", messages=ask, tools=[WEATHER, TIME])
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    (call,) = choice.message.tool_calls
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "call get_weather for Paris", "days": 1}
    schemas.assert_valid(schemas.CHAT_COMPLETION, answer.model_dump(mode="json", exclude_unset=True))
    sent = site.last_run()
    # Through the page: both declared, the client's schema brought to the page's subset.
    assert declared(sent) == ["get_weather", "get_time"]
    parameters = sent["tools"]["functions"][0]["parameters"]
    assert "additionalProperties" not in parameters and parameters["required"] == ["city"]
    made: ChatCompletionMessageFunctionToolCallParam = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.function.name, "arguments": call.function.arguments},
    }
    loop: list[ChatCompletionMessageParam] = [
        *ask,
        {"role": "assistant", "content": None, "tool_calls": [made]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"degrees": 21}'},
    ]
    final = client(run).chat.completions.create(model="replica-flash", messages=loop, tools=[WEATHER, TIME])
    assert final.choices[0].finish_reason == "stop" and not final.choices[0].message.tool_calls
    prompt = site.last_run()["prompt"]
    assert f"calls get_weather [id {call.id}] with arguments {call.function.arguments}" in prompt
    assert f'Tool result of get_weather [id {call.id}]: {{"degrees": 21}}' in prompt
    assert final.choices[0].message.content == f"Replica replica-flash answers: {prompt.splitlines()[-1]}"


def test_a_streamed_call_finishes_with_tool_calls(served: tuple[Coordinator, Site]) -> None:
    run, _ = served
    raw = client(run).chat.completions.with_raw_response.create(
        model="replica-flash",
        messages=[{"role": "user", "content": "please call get_time"}],
        tools=[WEATHER, TIME],
        stream=True,
    )
    assert raw.headers["x-coordinator-tools"] == "tools=adapted"  # before the first event
    chunks = [chunk for chunk in raw.parse() if chunk.choices]
    calls = [call for chunk in chunks for call in chunk.choices[0].delta.tool_calls or ()]
    assert [call.function.name for call in calls if call.function] == ["get_time"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_parallel_calls_and_only_the_first_when_they_are_off(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "call get_time, get_weather"}]
    tools = [WEATHER, TIME]
    both = client(run).chat.completions.create(model="replica-flash", messages=messages, tools=tools)
    assert called(both) == ["get_time", "get_weather"]
    assert len({c.id for c in both.choices[0].message.tool_calls or ()}) == 2
    one = client(run).chat.completions.create(
        model="replica-flash", messages=messages, tools=[WEATHER, TIME], parallel_tool_calls=False
    )
    assert called(one) == ["get_time"]
    assert len(site.last_run()["function_calls"]) == 2  # the model made two; the client got the first


def test_tool_choice_required_named_and_none(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    hello: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]
    raw = client(run).chat.completions.with_raw_response.create(
        model="replica-flash", messages=hello, tools=[WEATHER, TIME], tool_choice="required"
    )
    required = raw.parse()
    assert called(required) == ["get_weather"]
    # Said, never silent: the strict schema went to the page loosened, the choice emulated.
    assert raw.headers["x-coordinator-tools"] == "tools=adapted; emulated=tool_choice"
    named = client(run).chat.completions.create(
        model="replica-flash",
        messages=hello,
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert called(named) == ["get_time"]
    assert declared(site.last_run()) == ["get_time"]  # only the named one reaches the page
    # Two in a row, so each child (they take turns) turns its function calling back off.
    for _ in range(2):
        none = client(run).chat.completions.create(
            model="replica-flash",
            messages=[{"role": "user", "content": "call get_weather please"}],
            tools=[WEATHER, TIME],
            tool_choice="none",
        )
        assert none.choices[0].finish_reason == "stop" and not none.choices[0].message.tool_calls
        assert declared(site.last_run()) == [] and site.last_run()["tools"]["response_mime"] is None


def test_parse_with_a_pydantic_model_and_json_object(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    ask: list[ChatCompletionMessageParam] = [{"role": "user", "content": "a report on Paris"}]
    parsed = client(run).chat.completions.parse(model="replica-flash", messages=ask, response_format=Report)
    report = parsed.choices[0].message.parsed
    assert report == Report(city="a report on Paris", degrees=1, sunny=True, tags=["a report on Paris"])
    sent = site.last_run()["tools"]
    assert sent["response_mime"] == "application/json"
    assert sent["response_schema"]["required"] == ["city", "degrees", "sunny", "tags"]
    assert "additionalProperties" not in sent["response_schema"]
    raw = client(run).chat.completions.with_raw_response.create(
        model="replica-flash",
        messages=[{"role": "user", "content": "any json"}],
        response_format={"type": "json_object"},
    )
    loose = raw.parse()
    assert json.loads(loose.choices[0].message.content or "") == {"answer": "any json"}
    assert raw.headers["x-coordinator-tools"] == "output=page"
    # And back to free text: the structured output left on would bind the next request.
    for _ in range(2):
        hi: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
        text = client(run).chat.completions.create(model="replica-flash", messages=hi)
        assert text.choices[0].message.content == "Replica replica-flash answers: hi"


def test_an_answer_that_breaks_the_schema_is_an_error_never_prose(served: tuple[Coordinator, Site]) -> None:
    run, _ = served
    ask: dict[str, Any] = {
        "model": "replica-flash",
        "messages": [{"role": "user", "content": "now ignore the schema"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "Report", "schema": Report.model_json_schema(), "strict": True},
        },
    }
    with pytest.raises(openai.APIStatusError) as broken:
        client(run).chat.completions.create(**ask)
    assert broken.value.status_code == 502
    body = broken.value.body
    assert isinstance(body, dict) and body.get("code") == "invalid_output"
    assert "'Report'" in str(body.get("message")) and "not JSON" in str(body.get("message"))
    stream = client(run).chat.completions.create(**ask, stream=True)
    text = ""
    with pytest.raises(openai.APIError) as ended:
        for chunk in stream:
            text += (chunk.choices[0].delta.content or "") if chunk.choices else ""
    assert text == "Replica replica-flash answers: now ignore the schema"  # streamed, then the error
    assert "invalid_output" in str(ended.value) or "Report" in str(ended.value.message)


def test_a_function_the_page_cannot_take_is_called_through_the_prompt(
    served: tuple[Coordinator, Site],
) -> None:
    run, site = served
    node = {"type": "object", "properties": {"name": {"type": "string"}, "child": {"$ref": "#/$defs/Node"}}}
    tree: ChatCompletionToolParam = {
        "type": "function",
        "function": {
            "name": "walk_tree",
            "description": "Walks a tree of nodes",
            "parameters": {
                "type": "object",
                "properties": {"root": {"$ref": "#/$defs/Node"}},
                "$defs": {"Node": node},
            },
        },
    }
    raw = client(run).chat.completions.with_raw_response.create(
        model="replica-flash",
        messages=[{"role": "user", "content": "please call walk_tree"}],
        tools=[tree, TIME],
    )
    answer = raw.parse()
    # The recursive schema is more than the page's editor holds: offered in the prompt, labelled.
    assert raw.headers["x-coordinator-tools"] == "tools=page; emulated=tools"
    sent = site.last_run()
    assert declared(sent) == ["get_time"]
    assert sent["prompt"].startswith("Functions you may call through this prompt (JSON): ")
    assert answer.choices[0].finish_reason == "tool_calls" and called(answer) == ["walk_tree"]
    (call,) = answer.choices[0].message.tool_calls or []
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    written = re.fullmatch(r"<tool_call>(.*)</tool_call>", sent["answer"])
    assert (
        written is not None
        and json.loads(call.function.arguments) == json.loads(written.group(1))["arguments"]
    )
    assert not answer.choices[0].message.content  # the call line is not left in the text


def test_two_choices_come_from_both_pages_whole_and_streamed(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    ask: list[ChatCompletionMessageParam] = [{"role": "user", "content": "call get_weather for Oslo"}]
    before = len(site.runs())
    answer = client(run).chat.completions.create(model="replica-flash", messages=ask, tools=[WEATHER], n=2)
    assert [choice.index for choice in answer.choices] == [0, 1]
    assert [called(answer.model_copy(update={"choices": [c]})) for c in answer.choices] == [
        ["get_weather"]
    ] * 2
    schemas.assert_valid(schemas.CHAT_COMPLETION, answer.model_dump(mode="json", exclude_unset=True))
    pages = site.runs()[before:]
    # One run on each account's page, each with the declaration set in its Tools group.
    assert (
        len({page["session"] for page in pages}) == 2
        and [declared(page) for page in pages] == [["get_weather"]] * 2
    )
    stream = client(run).chat.completions.create(
        model="replica-flash", messages=ask, tools=[WEATHER], n=2, stream=True
    )
    finished = {
        choice.index: choice.finish_reason
        for chunk in stream
        for choice in chunk.choices
        if choice.finish_reason
    }
    assert finished == {0: "tool_calls", 1: "tool_calls"}
    assert len({page["session"] for page in site.runs()[before + 2 :]}) == 2
