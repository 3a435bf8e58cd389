"""Every kind of answer event, through the real coordinator and mock children, read with the
official openai client: reasoning, tool calls, finish reasons and the engine's usage counts.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.conftest import Coordinator, Runs

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there world"}]
REASONING = "Let me think about the greeting"
ARGUMENTS = {"city": "Paris", "unit": "celsius"}


@pytest.fixture(scope="module")
def thinking(module_runs: Runs) -> Coordinator:
    """Children that think before they answer, stop at the length limit and count tokens."""
    env = {"MOCK_REASONING": REASONING, "MOCK_FINISH_REASON": "length", "MOCK_USAGE": "11,13,6"}
    return module_runs.start(("t1",), env=env)


@pytest.fixture(scope="module")
def calling(module_runs: Runs) -> Coordinator:
    """Children that answer with a call of get_weather instead of text."""
    env = {"MOCK_TOOL_CALL": "get_weather", "MOCK_TOOL_ARGUMENTS": json.dumps(ARGUMENTS)}
    return module_runs.start(("k1",), env=env)


def _extra(model: Any, name: str) -> Any:
    # reasoning_content is not in the openai package's types: it arrives as an extra field.
    return (model.model_extra or {}).get(name)


def test_reasoning_arrives_as_reasoning_content(thinking: Coordinator) -> None:
    completion = thinking.openai().chat.completions.create(model="mock", messages=MESSAGES)
    (choice,) = completion.choices
    assert _extra(choice.message, "reasoning_content") == REASONING
    assert choice.message.content == "echo: hello there world"
    assert choice.message.refusal is None
    assert choice.finish_reason == "length"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 13)
    assert completion.usage.total_tokens == 24
    assert completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 6


def test_streamed_reasoning_comes_before_the_answer_and_usage_carries_the_engines_counts(
    thinking: Coordinator,
) -> None:
    stream = thinking.openai().chat.completions.create(
        model="mock", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    order: list[str] = []
    reasoning: list[str] = []
    content: list[str] = []
    finish_reasons: list[str] = []
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if piece := _extra(choice.delta, "reasoning_content"):
                reasoning.append(piece)
                order.append("reasoning")
            if choice.delta.content:
                content.append(choice.delta.content)
                order.append("content")
            if choice.finish_reason:
                finish_reasons.append(choice.finish_reason)
    assert "".join(reasoning) == REASONING
    assert len(reasoning) == len(REASONING.split())  # streamed word by word, not at once
    assert "".join(content) == "echo: hello there world"
    assert order == sorted(order, key=lambda kind: kind == "content")  # all reasoning first
    assert finish_reasons == ["length"]
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (11, 13, 24)
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 6


def test_a_tool_call_arrives_as_tool_calls(calling: Coordinator) -> None:
    completion = calling.openai().chat.completions.create(model="mock", messages=MESSAGES)
    (choice,) = completion.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == ARGUMENTS


def test_a_streamed_tool_call_arrives_as_tool_call_deltas(calling: Coordinator) -> None:
    stream = calling.openai().chat.completions.create(
        model="mock", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    calls: dict[int, dict[str, str]] = {}
    finish_reasons: list[str] = []
    content: list[str] = []
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                content.append(choice.delta.content)
            for delta in choice.delta.tool_calls or []:
                # As a client must: the id and name come once, the arguments may come in pieces.
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = delta.id or call["id"]
                if delta.function is not None:
                    call["name"] = delta.function.name or call["name"]
                    call["arguments"] += delta.function.arguments or ""
            if choice.finish_reason:
                finish_reasons.append(choice.finish_reason)
    assert list(calls) == [0]
    assert calls[0]["id"].startswith("call_")
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == ARGUMENTS
    assert content == []
    assert finish_reasons == ["tool_calls"]
    # No counts from the engine here: the child's estimate, which the coordinator relays.
    assert usage is not None and usage.prompt_tokens == 3
