"""What the wire format builds fits OpenAI's published schemas, event kind by event kind;
and the copy of those schemas in tests/support is what its generator makes of OpenAI's file."""

from __future__ import annotations

import json

import pytest

from coordinator.protocol.link import FinishReason, ReasoningDelta, TextDelta, ToolCall, Usage
from coordinator.protocol.openai import Answer, Delta, error_body
from tests.support import schemas
from tests.support.openai_schemas import generate

ANSWERS: dict[str, list[Delta]] = {
    "text": [TextDelta("hello "), TextDelta("world")],
    "reasoning": [ReasoningDelta("let me think"), TextDelta("hello")],
    "tool call": [ToolCall("call_1", "get_weather", '{"city": "Paris"}')],
    "text, then tool calls": [
        TextDelta("calling"),
        ToolCall("call_1", "a", "{}"),
        ToolCall("call_2", "b", "{}"),
    ],
    "empty": [],
}
USAGE = Usage(prompt=3, completion=5, reasoning=2)


@pytest.mark.parametrize("events", ANSWERS.values(), ids=ANSWERS.keys())
@pytest.mark.parametrize("reason", list(FinishReason))
def test_a_completion_fits_the_schema(events: list[Delta], reason: FinishReason) -> None:
    answer = Answer("req_1", "mock", 1700000000)
    schemas.assert_valid(schemas.CHAT_COMPLETION, answer.completion(events, reason, USAGE))


@pytest.mark.parametrize("events", ANSWERS.values(), ids=ANSWERS.keys())
def test_every_chunk_of_a_stream_fits_the_schema(events: list[Delta]) -> None:
    stream = Answer("req_1", "mock", 1700000000, include_usage=True).stream()
    raw = b"".join(stream.delta(event) for event in events) + stream.end(FinishReason.STOP, USAGE)
    *chunks, done = raw.decode().split("\n\n")[:-1]
    assert done == "data: [DONE]"
    assert chunks
    for chunk in chunks:
        schemas.assert_valid(schemas.CHAT_COMPLETION_CHUNK, json.loads(chunk.removeprefix("data: ")))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 499, 500, 502, 503])
def test_an_error_body_fits_the_schema(status: int) -> None:
    schemas.assert_valid(schemas.ERROR, error_body("words", status=status, code="a_code", param="n"))
    schemas.assert_valid(schemas.ERROR, error_body("words", status=status))


def test_the_validator_names_what_is_wrong() -> None:
    found = schemas.violations(schemas.ERROR, {"error": {"message": 1, "type": "t", "param": None}})
    assert "$.error: 'code' is a required property" in found
    assert "$.error.message: 1 is not of type 'string'" in found


def test_the_copied_schemas_are_what_the_generator_makes() -> None:
    source = generate.default_source()
    if source is None:
        pytest.skip("OpenAI's openapi.json (shared/openai) is not beside this clone")
    made = generate.render(generate.generate(source))
    assert made == generate.OUTPUT.read_text(), (
        "tests/support/openai_schemas/schemas.json is stale: "
        "run python -m tests.support.openai_schemas.generate"
    )
