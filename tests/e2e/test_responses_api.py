"""`POST /v1/responses` through the real coordinator and mock children, read with the official
openai client: text, a function call and reasoning, whole and streamed, and its errors.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.support import schemas
from tests.support.coordinator import Coordinator, Runs
from tests.support.sse import payloads

REASONING = "Let me think about the greeting"
ARGUMENTS = {"city": "Paris", "unit": "celsius"}
WEATHER_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def plain(module_runs: Runs) -> Coordinator:
    return module_runs.start(("p1",), env={"MOCK_USAGE": "7,5"})


@pytest.fixture(scope="module")
def thinking(module_runs: Runs) -> Coordinator:
    env = {"MOCK_REASONING": REASONING, "MOCK_USAGE": "11,13,6"}
    return module_runs.start(("t1",), env=env)


@pytest.fixture(scope="module")
def calling(module_runs: Runs) -> Coordinator:
    env = {"MOCK_TOOL_CALL": "get_weather", "MOCK_TOOL_ARGUMENTS": json.dumps(ARGUMENTS)}
    return module_runs.start(("k1",), env=env)


def test_a_text_answer_is_a_response_with_one_message(plain: Coordinator) -> None:
    response = plain.openai().responses.create(
        model="mock", instructions="Be brief.", input="hello there world", metadata={"team": "a"}
    )
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == "echo: hello there world"
    (message,) = response.output
    assert message.type == "message"
    assert message.role == "assistant"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (
        7,
        5,
        12,
    )
    assert response.instructions == "Be brief."
    assert response.metadata == {"team": "a"}


def test_input_items_carry_the_conversation(plain: Coordinator) -> None:
    # An assistant turn as a client hands back what it got: output_text parts (typed loosely here).
    items: Any = [
        {"role": "user", "content": [{"type": "input_text", "text": "first"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "an answer"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "second turn"}]},
    ]
    response = plain.openai().responses.create(model="mock", input=items)
    assert response.output_text == "echo: second turn"


def test_a_streamed_text_answer_arrives_as_response_events(plain: Coordinator) -> None:
    client = plain.openai()
    with client.responses.stream(model="mock", input="stream these words") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "echo: stream these words"
    assert len(deltas) > 1  # streamed piece by piece, not at once
    assert final.status == "completed"
    assert final.output_text == "echo: stream these words"
    assert final.usage is not None
    assert final.usage.output_tokens == 5


def test_stream_events_are_numbered_in_order(plain: Coordinator) -> None:
    stream = plain.openai().responses.create(model="mock", input="count me", stream=True)
    events = list(stream)
    assert [event.sequence_number for event in events] == list(range(len(events)))
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    for kind in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert kind in kinds


def test_reasoning_is_a_reasoning_item_with_its_summary(thinking: Coordinator) -> None:
    response = thinking.openai().responses.create(
        model="mock", input="hello there world", reasoning={"effort": "high", "summary": "auto"}
    )
    reasoning, message = response.output
    assert reasoning.type == "reasoning"
    # The mock says the effort it was asked for: reasoning.effort reached it as reasoning_effort.
    assert [part.text for part in reasoning.summary] == [f"effort high: {REASONING}"]
    assert message.type == "message"
    assert response.output_text == "echo: hello there world"
    assert response.usage is not None
    assert response.usage.output_tokens_details.reasoning_tokens == 6


def test_streamed_reasoning_comes_as_summary_events_before_the_text(thinking: Coordinator) -> None:
    client = thinking.openai()
    with client.responses.stream(model="mock", input="hello there world") as stream:
        kinds = []
        summary = []
        for event in stream:
            kinds.append(event.type)
            if event.type == "response.reasoning_summary_text.delta":
                summary.append(event.delta)
        final = stream.get_final_response()
    assert "".join(summary) == REASONING
    assert kinds.index("response.reasoning_summary_text.done") < kinds.index("response.output_text.delta")
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output_text == "echo: hello there world"


def test_a_function_call_is_a_function_call_item(calling: Coordinator) -> None:
    response = calling.openai().responses.create(model="mock", input="weather?", tools=[WEATHER_TOOL])
    (call,) = response.output
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert call.call_id.startswith("call_")
    assert json.loads(call.arguments) == ARGUMENTS


def test_a_streamed_function_call_and_its_output_in_the_next_turn(calling: Coordinator) -> None:
    client = calling.openai()
    with client.responses.stream(model="mock", input="weather?", tools=[WEATHER_TOOL]) as stream:
        arguments = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    (call,) = final.output
    assert call.type == "function_call"
    assert json.loads("".join(arguments)) == ARGUMENTS
    assert json.loads(call.arguments) == ARGUMENTS
    # The call and its output go back as input items, as a client running the tool sends them.
    again = client.responses.create(
        model="mock",
        tools=[WEATHER_TOOL],
        input=[
            {"role": "user", "content": "weather?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"},
        ],
    )
    assert again.status == "completed"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"store": True}, "store"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"frobnicate": 1}, "frobnicate"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ],
)
def test_what_cannot_be_honoured_is_a_400_naming_it(
    plain: Coordinator, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        plain.openai().responses.create(model="mock", input="hi", extra_body=extra)
    body: Any = caught.value.body
    assert body["param"] == param


def test_an_unknown_model_is_a_404_in_openais_shape(plain: Coordinator) -> None:
    answer = plain.post("/v1/responses", json={"model": "nope", "input": "hi"})
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "model_not_found"
    assert answer.headers["x-request-id"]


def test_bad_json_is_a_400_not_a_500(plain: Coordinator) -> None:
    answer = httpx.post(plain.url + "/v1/responses", content=b"{nope", timeout=10)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_json"


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def test_an_input_image_reaches_the_child_as_a_file(plain: Coordinator) -> None:
    image: Any = {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"}
    response = plain.openai().responses.create(
        model="mock",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "what is this"}, image]}],
    )
    # The mock names the files its prompt carries.
    assert "[files: " in response.output_text
    assert "image/png" in response.output_text


ECHO_SCHEMA = {"type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"]}


def test_a_json_schema_format_asks_for_json(plain: Coordinator) -> None:
    response = plain.openai().responses.create(
        model="mock",
        input="give me json",
        text={"format": {"type": "json_schema", "name": "echo", "schema": ECHO_SCHEMA}},
    )
    # The mock answers an instance of the schema, its strings the echo.
    assert json.loads(response.output_text) == {"echo": "echo: give me json"}


@pytest.mark.parametrize("run", ["plain", "thinking", "calling"])
def test_whole_and_streamed_answers_fit_openais_schemas(run: str, request: pytest.FixtureRequest) -> None:
    coordinator: Coordinator = request.getfixturevalue(run)
    body = {"model": "mock", "input": "hello there", "tools": [WEATHER_TOOL], "reasoning": {"effort": "low"}}
    whole = coordinator.post("/v1/responses", json=body)
    assert whole.status_code == 200, whole.text
    schemas.assert_valid(schemas.RESPONSE, whole.json())
    with httpx.stream(
        "POST", f"{coordinator.url}/v1/responses", json=body | {"stream": True}, timeout=30
    ) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/event-stream"
        received = list(payloads(answer))
    events = [event for event in received if isinstance(event, dict)]
    assert len(events) == len(received)  # no [DONE]: a Responses stream ends with its last event
    for event in events:
        schemas.assert_valid(schemas.RESPONSE_STREAM_EVENT, event)
    assert events[-1]["type"] == "response.completed"
    schemas.assert_valid(schemas.RESPONSE, events[-1]["response"])


def test_an_error_fits_openais_schema(plain: Coordinator) -> None:
    answer = plain.post("/v1/responses", json={"model": "mock", "input": "hi", "store": True})
    assert answer.status_code == 400
    schemas.assert_valid(schemas.ERROR, answer.json())
