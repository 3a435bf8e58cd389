"""Every kind of answer event, through the real coordinator and mock children, read with the
official openai client: reasoning, tool calls, finish reasons and the engine's usage counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionMessageParam

from tests.support.coordinator import Coordinator, Runs

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
    streamed = _read(thinking)
    assert "".join(streamed.reasoning) == REASONING
    assert len(streamed.reasoning) == len(REASONING.split())  # streamed word by word, not at once
    assert "".join(streamed.content) == "echo: hello there world"
    assert streamed.order == sorted(streamed.order, key=lambda kind: kind == "content")  # reasoning first
    assert streamed.finish_reasons == ["length"]
    usage = streamed.usage
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
    streamed = _read(calling)
    assert list(streamed.calls) == [0]
    (call,) = streamed.calls.values()
    assert call["id"].startswith("call_")
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == ARGUMENTS
    assert streamed.content == []
    assert streamed.finish_reasons == ["tool_calls"]
    # No counts from the engine here: the child's estimate, which the coordinator relays.
    assert streamed.usage is not None and streamed.usage.prompt_tokens == 3


@dataclass
class Streamed:
    """What a client assembles from a streamed answer."""

    order: list[str] = field(default_factory=list)  # "reasoning" and "content", as they came
    reasoning: list[str] = field(default_factory=list)
    content: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, str]] = field(default_factory=dict)
    finish_reasons: list[str] = field(default_factory=list)
    usage: CompletionUsage | None = None


def _read(coordinator: Coordinator) -> Streamed:
    stream = coordinator.openai().chat.completions.create(
        model="mock", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    streamed = Streamed()
    for chunk in stream:
        streamed.usage = chunk.usage or streamed.usage
        for choice in chunk.choices:
            if piece := _extra(choice.delta, "reasoning_content"):
                streamed.reasoning.append(piece)
                streamed.order.append("reasoning")
            if choice.delta.content:
                streamed.content.append(choice.delta.content)
                streamed.order.append("content")
            for delta in choice.delta.tool_calls or []:
                # As a client must: the id and name come once, the arguments may come in pieces.
                call = streamed.calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = delta.id or call["id"]
                if delta.function is not None:
                    call["name"] = delta.function.name or call["name"]
                    call["arguments"] += delta.function.arguments or ""
            if choice.finish_reason:
                streamed.finish_reasons.append(choice.finish_reason)
    return streamed
