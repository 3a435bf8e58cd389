"""Serving through the coordinator with the official openai client: answers, headers, shapes."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.support.coordinator import Coordinator, Runs

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hello there world"},
]


@pytest.fixture(scope="module")
def three(module_runs: Runs) -> Coordinator:
    return module_runs.start(("c1", "c2", "c3"), args=["--max-body-bytes", "100000"])


def test_non_stream_answer_with_usage_and_headers(three: Coordinator) -> None:
    raw = three.openai().chat.completions.with_raw_response.create(model="mock", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello there world"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 4
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 4
    assert raw.headers["x-request-id"]
    assert raw.headers["x-coordinator-child"] in {"c1", "c2", "c3"}
    assert completion.id == f"chatcmpl-{raw.headers['x-request-id']}"


def test_stream_answer_arrives_in_chunks(three: Coordinator) -> None:
    stream = three.openai().chat.completions.create(
        model="mock", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    deltas: list[str] = []
    usage = None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        deltas.extend(choice.delta.content for choice in chunk.choices if choice.delta.content)
    assert deltas == ["echo:", " hello", " there", " world"]
    assert usage is not None and usage.completion_tokens == 4


def test_client_request_id_is_kept(three: Coordinator) -> None:
    client = three.openai(default_headers={"X-Request-ID": "my-trace-42"})
    raw = client.chat.completions.with_raw_response.create(model="mock", messages=MESSAGES)
    assert raw.headers["x-request-id"] == "my-trace-42"
    assert raw.parse().id == "chatcmpl-my-trace-42"


def test_round_robin_over_idle_children(three: Coordinator) -> None:
    client = three.openai()
    served = [
        client.chat.completions.with_raw_response.create(model="mock", messages=MESSAGES).headers[
            "x-coordinator-child"
        ]
        for _ in range(6)
    ]
    # Sequential requests find every child idle: each gets its turn, in order.
    assert sorted(served[:3]) == ["c1", "c2", "c3"]
    assert served[3:] == served[:3]


def test_models_is_the_union_of_the_children(three: Coordinator) -> None:
    models = three.openai().models.list()
    assert [m.id for m in models.data] == ["mock"]
    response = three.get("/v1/models")
    assert response.headers["x-coordinator-child"] == "-"


def test_health_surfaces(three: Coordinator) -> None:
    assert three.get("/live").json() == {"status": "live"}
    for path in ("/ready", "/health"):
        response = three.get(path)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ready"
        assert body["children"]["serving"] == 3
        assert body["queue"] == {"waiting": 0, "max": 100, "by_lane": {"high": 0, "normal": 0, "low": 0}}
    children = three.children()
    assert set(children) == {"c1", "c2", "c3"}
    for child in children.values():
        assert child["state"] == "ready"
        assert child["pid"] > 0
        assert set(child["ports"]) == {"api", "stream", "browser"}
        assert {"request_id", "served", "restarts", "last_error", "profile"} <= set(child)


BAD_BODIES = [
    (b"{not json", 400, "invalid_json", None),
    (b"[1, 2]", 400, "invalid_json", None),
    (b'{"model": "mock"}', 400, "invalid_request", "messages"),
    (b'{"model": "mock", "messages": []}', 400, "invalid_request", "messages"),
    (b'{"model": "mock", "messages": [{"content": "hi"}]}', 400, "invalid_request", "messages[0].role"),
    (
        b'{"model": "mock", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}',
        400,
        None,
        "stream",
    ),
    (
        b'{"model": "gpt-nothing", "messages": [{"role": "user", "content": "hi"}]}',
        404,
        "model_not_found",
        None,
    ),
]


@pytest.mark.parametrize(("body", "status", "code", "param"), BAD_BODIES)
def test_bad_input_gets_an_openai_error(
    three: Coordinator, body: bytes, status: int, code: str | None, param: str | None
) -> None:
    response = three.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert error["message"] and error["type"]
    if code:
        assert error["code"] == code
    if param:
        assert error["param"] == param
    assert response.headers["x-request-id"]


def test_bad_input_through_the_sdk_raises_clearly(three: Coordinator) -> None:
    with pytest.raises(openai.BadRequestError, match="messages"):
        three.openai().chat.completions.create(model="mock", messages=[])


def test_body_over_the_limit_is_413(three: Coordinator) -> None:
    big = {"model": "mock", "messages": [{"role": "user", "content": "x" * 200_000}]}
    response = three.post("/v1/chat/completions", json=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    # Streamed without a Content-Length, the limit holds too.
    chunks = iter([b'{"messages": [{"role": "user", "content": "', b"y" * 150_000, b'"}]}'])
    response = three.post("/v1/chat/completions", content=chunks)
    assert response.status_code == 413


def test_unknown_route_and_wrong_method(three: Coordinator) -> None:
    response = three.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    response = three.get("/v1/chat/completions")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert "POST" in response.headers["allow"]


def test_cancel_of_an_unknown_request_is_404(three: Coordinator) -> None:
    response = three.post("/v1/cancel/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "request_not_found"


def test_admin_actions_on_an_unknown_child(three: Coordinator) -> None:
    response = three.post("/admin/children/nobody/restart")
    assert response.status_code == 404
    assert "c1" in response.json()["error"]["message"]


def test_the_coordinator_survives_it_all(three: Coordinator) -> None:
    # Runs last in this module: everything above left the coordinator serving normally.
    assert httpx.get(three.url + "/ready", timeout=5).status_code == 200
    assert three.process.poll() is None
    assert not three.events("internal_error")
