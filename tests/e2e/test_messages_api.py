"""Anthropic's `POST /v1/messages` through the real coordinator and mock children, read with
Anthropic's official client: text, tools, thinking, whole and streamed, and errors in
Anthropic's shape raised as the SDK's own exception classes.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest

from tests.support.anthropic import anthropic_client
from tests.support.coordinator import Coordinator, Runs

REASONING = "Let me think about the greeting"
ARGUMENTS = {"city": "Paris", "unit": "celsius"}
KEY = "sk-messages-test-key"
WEATHER: Any = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
HELLO: Any = [{"role": "user", "content": "hello there world"}]


@pytest.fixture(scope="module")
def plain(module_runs: Runs) -> Coordinator:
    return module_runs.start(("m1",), env={"MOCK_USAGE": "7,5"})


@pytest.fixture(scope="module")
def thinking(module_runs: Runs) -> Coordinator:
    return module_runs.start(("t1",), env={"MOCK_REASONING": REASONING, "MOCK_USAGE": "11,13,6"})


@pytest.fixture(scope="module")
def calling(module_runs: Runs) -> Coordinator:
    env = {"MOCK_TOOL_CALL": "get_weather", "MOCK_TOOL_ARGUMENTS": json.dumps(ARGUMENTS)}
    return module_runs.start(("k1",), env=env)


@pytest.fixture(scope="module")
def locked(module_runs: Runs) -> Coordinator:
    return module_runs.start(("l1",), env={"COORDINATOR_API_KEY": KEY}, api_key=KEY)


@pytest.fixture(scope="module")
def small(module_runs: Runs) -> Coordinator:
    return module_runs.start(("s1",), args=["--max-body-bytes", "4096"])


@pytest.fixture(scope="module")
def exhausted(module_runs: Runs) -> Coordinator:
    return module_runs.start(("q1",), env={"MOCK_QUOTA": "q1"})


def test_a_text_answer_is_a_message(plain: Coordinator) -> None:
    message = anthropic_client(plain).messages.create(
        model="mock", max_tokens=256, system="Be brief.", messages=HELLO, metadata={"user_id": "u-1"}
    )
    assert message.id.startswith("msg_")
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == "mock"
    (block,) = message.content
    assert block.type == "text"
    assert block.text == "echo: hello there world"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (7, 5)


def test_system_blocks_and_content_blocks_are_read(plain: Coordinator) -> None:
    message = anthropic_client(plain).messages.create(
        model="mock",
        max_tokens=256,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "first"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "an answer"}]},
            {"role": "user", "content": [{"type": "text", "text": "second turn"}]},
        ],
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "echo: second turn"


def test_a_streamed_answer_arrives_as_text_deltas_and_a_final_message(plain: Coordinator) -> None:
    with anthropic_client(plain).messages.stream(model="mock", max_tokens=256, messages=HELLO) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == "echo: hello there world"
    assert len(pieces) > 1  # streamed piece by piece, not at once
    assert final.content[0].type == "text"
    assert final.content[0].text == "echo: hello there world"
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (7, 5)


def test_the_event_stream_has_anthropics_order(plain: Coordinator) -> None:
    stream = anthropic_client(plain).messages.create(
        model="mock", max_tokens=256, messages=HELLO, stream=True
    )
    kinds = [event.type for event in stream]
    assert kinds[0] == "message_start"
    assert kinds[1] == "content_block_start"
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_a_tool_call_is_a_tool_use_block(calling: Coordinator) -> None:
    message = anthropic_client(calling).messages.create(
        model="mock", max_tokens=256, messages=HELLO, tools=[WEATHER]
    )
    (block,) = message.content
    assert block.type == "tool_use"
    assert block.id.startswith("toolu_")
    assert block.name == "get_weather"
    assert block.input == ARGUMENTS
    assert message.stop_reason == "tool_use"


def test_a_streamed_tool_call_and_its_result_in_the_next_turn(plain: Coordinator) -> None:
    client = anthropic_client(plain)
    # tool_choice `tool` makes the mock call the function it names: the choice reached the child.
    with client.messages.stream(
        model="mock",
        max_tokens=256,
        messages=HELLO,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
    ) as stream:
        final = stream.get_final_message()
    (block,) = final.content
    assert block.type == "tool_use"
    assert block.name == "get_weather"
    assert final.stop_reason == "tool_use"
    answer = client.messages.create(
        model="mock",
        max_tokens=256,
        tools=[WEATHER],
        tool_choice={"type": "none"},
        messages=[
            *HELLO,
            {"role": "assistant", "content": [block.model_dump(include={"type", "id", "name", "input"})]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "sunny"}],
            },
        ],
    )
    assert answer.stop_reason == "end_turn"
    assert answer.content[0].type == "text"


def test_thinking_is_a_thinking_block_at_the_effort_its_budget_asks(thinking: Coordinator) -> None:
    message = anthropic_client(thinking).messages.create(
        model="mock",
        max_tokens=4096,
        messages=HELLO,
        thinking={"type": "enabled", "budget_tokens": 2048},
    )
    first, second = message.content
    assert first.type == "thinking"
    # The mock says the effort it was asked for: a budget of 2,048 tokens asks for low.
    assert first.thinking == f"effort low: {REASONING}"
    assert second.type == "text"
    assert second.text == "echo: hello there world"


def test_streamed_thinking_comes_as_thinking_deltas_before_the_text(thinking: Coordinator) -> None:
    with anthropic_client(thinking).messages.stream(model="mock", max_tokens=256, messages=HELLO) as stream:
        events = list(stream)
        final = stream.get_final_message()
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    kinds = [delta.type for delta in deltas]
    assert kinds == sorted(kinds, key=lambda kind: kind == "text_delta")  # thinking first
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].type == "thinking"
    assert final.content[0].thinking == REASONING


def test_an_unsupported_field_is_a_bad_request_in_anthropics_shape(plain: Coordinator) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic_client(plain).messages.create(
            model="mock", max_tokens=256, messages=HELLO, extra_body={"top_k": 5}
        )
    body: Any = caught.value.body
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "top_k" in body["error"]["message"]


def test_an_unknown_model_is_not_found(plain: Coordinator) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        anthropic_client(plain).messages.create(model="nope", max_tokens=256, messages=HELLO)
    body: Any = caught.value.body
    assert body["error"]["type"] == "not_found_error"


def test_a_missing_key_is_an_authentication_error_and_x_api_key_is_a_key(locked: Coordinator) -> None:
    with pytest.raises(anthropic.AuthenticationError) as caught:
        anthropic_client(locked, api_key="wrong").messages.create(
            model="mock", max_tokens=256, messages=HELLO
        )
    body: Any = caught.value.body
    assert body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": body["error"]["message"]},
    }
    message = anthropic_client(locked).messages.create(model="mock", max_tokens=256, messages=HELLO)
    assert message.content[0].type == "text"


def test_quota_is_a_rate_limit_error_with_retry_after(exhausted: Coordinator) -> None:
    with pytest.raises(anthropic.RateLimitError) as caught:
        anthropic_client(exhausted).messages.create(model="mock", max_tokens=256, messages=HELLO)
    assert int(caught.value.response.headers["retry-after"]) > 0
    body: Any = caught.value.body
    assert body["error"]["type"] == "rate_limit_error"


def test_bad_json_and_unknown_routes_answer_in_anthropics_shape(plain: Coordinator) -> None:
    answer = httpx.post(plain.url + "/v1/messages", content=b"{nope", timeout=10)
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    answer = httpx.get(plain.url + "/v1/messages", timeout=10)
    assert answer.status_code == 405
    assert answer.json()["type"] == "error"


def test_a_body_too_large_is_refused_in_anthropics_shape_and_on_the_chat_route_in_openais(
    small: Coordinator,
) -> None:
    long = [{"role": "user", "content": "x" * 8192}]
    with pytest.raises(anthropic.APIStatusError) as caught:
        anthropic_client(small).messages.create(model="mock", max_tokens=100, messages=long)  # type: ignore[arg-type]
    assert caught.value.status_code == 413
    body: Any = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "request_too_large"
    assert "4096 bytes" in body["error"]["message"]
    chat = httpx.post(
        small.url + "/v1/chat/completions", json={"model": "mock", "messages": long}, timeout=10
    )
    assert chat.status_code == 413 and chat.json()["error"]["code"] == "request_too_large"


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def test_a_base64_image_reaches_the_child_as_a_file(plain: Coordinator) -> None:
    image: Any = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    message = anthropic_client(plain).messages.create(
        model="mock",
        max_tokens=256,
        messages=[{"role": "user", "content": [{"type": "text", "text": "what is this"}, image]}],
    )
    block = message.content[0]
    assert block.type == "text"
    # The mock names the files its prompt carries.
    assert "[files: " in block.text
    assert "image/png" in block.text
