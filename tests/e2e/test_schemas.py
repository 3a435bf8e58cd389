"""Every kind of answer the coordinator sends, checked against OpenAI's published schema
for its type (tests/support/openai_schemas): completions whole and streamed (with usage,
tool calls, reasoning, n choices), models, and error bodies of each status."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import schemas
from tests.support.coordinator import Coordinator, Runs
from tests.support.sse import DONE, payloads

HELLO = [{"role": "user", "content": "hello there"}]
KEY = "schema-key-123"


@pytest.fixture(scope="module")
def plain(module_runs: Runs) -> Coordinator:
    return module_runs.start(("s1", "s2"), env={"MOCK_MODELS": "mock,mock-pro"})


@pytest.fixture(scope="module")
def thinking_caller(module_runs: Runs) -> Coordinator:
    """Children that think, then call a function instead of answering in text."""
    env = {
        "MOCK_REASONING": "first I think",
        "MOCK_TOOL_CALL": "get_weather",
        "MOCK_TOOL_ARGUMENTS": '{"a": 1}',
    }
    return module_runs.start(("t1", "t2"), env=env)


@pytest.fixture(scope="module")
def locked_out_of_quota(module_runs: Runs) -> Coordinator:
    """A run that needs a key, whose one profile is out of quota."""
    return module_runs.start(("q1",), env={"COORDINATOR_API_KEY": KEY, "MOCK_QUOTA": "q1"}, api_key=KEY)


def _complete(run: Coordinator, **fields: Any) -> dict[str, Any]:
    response = run.post("/v1/chat/completions", json={"model": "mock", "messages": HELLO, **fields})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    schemas.assert_valid(schemas.CHAT_COMPLETION, body)
    return body


def _stream(run: Coordinator, **fields: Any) -> list[dict[str, Any]]:
    """Every chunk of a streamed answer, each checked; the stream ends with one [DONE]."""
    body = {"model": "mock", "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}
    headers = {"Authorization": f"Bearer {run.api_key}"} if run.api_key else {}
    with httpx.stream(
        "POST", f"{run.url}/v1/chat/completions", json=body | fields, headers=headers, timeout=30
    ) as response:
        assert response.status_code == 200
        events = list(payloads(response))
    assert events[-1] == DONE and events.count(DONE) == 1
    chunks = [event for event in events if isinstance(event, dict)]
    for chunk in chunks:
        schemas.assert_valid(schemas.CHAT_COMPLETION_CHUNK, chunk)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    return chunks


def test_a_completion_fits(plain: Coordinator) -> None:
    assert _complete(plain)["choices"][0]["message"]["content"] == "echo: hello there"


def test_every_chunk_of_a_stream_with_usage_fits(plain: Coordinator) -> None:
    assert len(_stream(plain)) >= 4  # role, words, finish, usage


def test_n_choices_fit_whole_and_streamed(plain: Coordinator) -> None:
    assert len(_complete(plain, n=2)["choices"]) == 2
    chunks = _stream(plain, n=2)
    assert {chunk["choices"][0]["index"] for chunk in chunks[:-1]} == {0, 1}


def test_a_completion_with_reasoning_and_a_tool_call_fits(thinking_caller: Coordinator) -> None:
    message = _complete(thinking_caller)["choices"][0]["message"]
    # reasoning_content is our extension: OpenAI's message schema does not forbid extra fields.
    assert message["reasoning_content"] == "first I think"
    assert message["tool_calls"][0]["function"]["name"] == "get_weather"


def test_every_chunk_of_a_stream_with_reasoning_and_a_tool_call_fits(thinking_caller: Coordinator) -> None:
    deltas = [chunk["choices"][0]["delta"] for chunk in _stream(thinking_caller)[:-1]]
    assert any("reasoning_content" in delta for delta in deltas)
    assert any("tool_calls" in delta for delta in deltas)


def test_the_model_list_and_each_model_fit(plain: Coordinator) -> None:
    listed = plain.get("/v1/models").json()
    schemas.assert_valid(schemas.MODEL_LIST, listed)
    assert [model["id"] for model in listed["data"]] == ["mock", "mock-pro"]
    for model in listed["data"]:
        response = plain.get(f"/v1/models/{model['id']}")
        assert response.status_code == 200
        schemas.assert_valid(schemas.MODEL, response.json())
        assert response.json() == model  # the same object as in the list


def test_the_openai_client_retrieves_a_model(plain: Coordinator) -> None:
    model = plain.openai().models.retrieve("mock-pro")
    assert (model.id, model.object, model.owned_by) == ("mock-pro", "model", "coordinator")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "param"),
    [
        ("POST", "/v1/chat/completions", {"messages": HELLO, "n": 0}, 400, "invalid_value", "n"),
        (
            "POST",
            "/v1/chat/completions",
            {"messages": HELLO, "seed": 3},
            400,
            "unsupported_parameter",
            "seed",
        ),
        ("POST", "/v1/chat/completions", {"messages": HELLO, "top_k": 3}, 400, "unknown_parameter", "top_k"),
        ("POST", "/v1/chat/completions", {"messages": HELLO, "n": 3}, 400, "unsupported_parameter", "n"),
        (
            "POST",
            "/v1/chat/completions",
            {"messages": HELLO, "model": "nope"},
            404,
            "model_not_found",
            "model",
        ),
        ("GET", "/v1/models/nope", None, 404, "model_not_found", "model"),
        ("GET", "/v1/nowhere", None, 404, "not_found", None),
        ("POST", "/v1/embeddings", {"input": "x", "model": "mock"}, 404, "unsupported_endpoint", None),
        ("GET", "/v1/completions", None, 404, "unsupported_endpoint", None),
        ("DELETE", "/v1/models", None, 405, "method_not_allowed", None),
    ],
)
def test_error_bodies_fit(
    plain: Coordinator, method: str, path: str, body: Any, status: int, code: str, param: str | None
) -> None:
    response = httpx.request(method, plain.url + path, json=body, timeout=10)
    assert response.status_code == status, response.text
    schemas.assert_valid(schemas.ERROR, response.json())
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, param)


def test_unsupported_endpoints_say_what_is_served(plain: Coordinator) -> None:
    message = plain.post("/v1/embeddings", json={"input": "x"}).json()["error"]["message"]
    assert "/v1/embeddings" in message
    for served in ("chat completions", "responses", "messages", "models"):
        assert served in message


def test_401_and_429_bodies_fit(locked_out_of_quota: Coordinator) -> None:
    refused = httpx.get(f"{locked_out_of_quota.url}/v1/models", timeout=10)
    assert refused.status_code == 401
    schemas.assert_valid(schemas.ERROR, refused.json())
    exhausted = locked_out_of_quota.post("/v1/chat/completions", json={"model": "mock", "messages": HELLO})
    assert exhausted.status_code == 429, exhausted.text
    schemas.assert_valid(schemas.ERROR, exhausted.json())
    assert (exhausted.json()["error"]["code"], exhausted.json()["error"]["param"]) == (
        "quota_exhausted",
        "model",
    )
