"""`n` > 1 through the real coordinator and mock children: n choices from n children in
parallel, merged whole or streamed, and what a failure or a cancel of one choice does."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.support import schemas
from tests.support.coordinator import Coordinator, Runs
from tests.support.processes import wait_for
from tests.support.sse import DONE, payloads

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there world"}]
ECHO = "echo: hello there world"


@pytest.fixture(scope="module")
def three(module_runs: Runs) -> Coordinator:
    # Tokens 30 ms apart, so that the choices' chunks overlap in time; fixed counts to sum.
    env = {"MOCK_TOKEN_MS": "30", "MOCK_USAGE": "7,5,2"}
    return module_runs.start(("alpha", "beta", "gamma"), env=env)


@pytest.fixture(scope="module")
def failing(module_runs: Runs) -> Coordinator:
    """alpha answers after 1.5 s; beta and gamma fail every request at once."""
    env = {"MOCK_FIRST_TOKEN_MS": "1500", "MOCK_FAIL_REQUESTS": "beta,gamma"}
    return module_runs.start(("alpha", "beta", "gamma"), env=env)


def _chat(run: Coordinator, request_id: str, **fields: Any) -> httpx.Response:
    body = {"model": "mock", "messages": HELLO, **fields}
    return run.post("/v1/chat/completions", json=body, headers={"X-Request-ID": request_id})


def test_n_choices_come_whole_from_n_children(three: Coordinator) -> None:
    response = _chat(three, "choices-whole", n=3)
    assert response.status_code == 200, response.text
    body = response.json()
    schemas.assert_valid(schemas.CHAT_COMPLETION, body)
    assert body["id"] == "chatcmpl-choices-whole"
    assert [choice["index"] for choice in body["choices"]] == [0, 1, 2]
    assert all(choice["message"]["content"] == ECHO for choice in body["choices"])
    assert all(choice["finish_reason"] == "stop" for choice in body["choices"])
    # The prompt is counted once, the three completions summed.
    assert body["usage"]["prompt_tokens"] == 7
    assert body["usage"]["completion_tokens"] == 15
    assert body["usage"]["total_tokens"] == 22
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 6
    assert sorted(response.headers["x-coordinator-child"].split(",")) == ["alpha", "beta", "gamma"]


def test_the_openai_client_reads_n_choices(three: Coordinator) -> None:
    completion = three.openai().chat.completions.create(model="mock", messages=HELLO, n=2)
    assert [choice.index for choice in completion.choices] == [0, 1]
    assert [choice.message.content for choice in completion.choices] == [ECHO, ECHO]


def test_n_choices_stream_interleaved_with_one_usage_and_one_done(three: Coordinator) -> None:
    body = {
        "model": "mock",
        "messages": HELLO,
        "n": 3,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream(
        "POST",
        f"{three.url}/v1/chat/completions",
        json=body,
        headers={"X-Request-ID": "choices-stream"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        events = list(payloads(response))
    assert events[-1] == DONE and events.count(DONE) == 1
    chunks = [event for event in events[:-1] if isinstance(event, dict)]
    for chunk in chunks:
        schemas.assert_valid(schemas.CHAT_COMPLETION_CHUNK, chunk)
        assert chunk["id"] == "chatcmpl-choices-stream"
    *answers, usage = chunks
    assert usage["choices"] == [] and usage["usage"]["prompt_tokens"] == 7
    assert (usage["usage"]["completion_tokens"], usage["usage"]["total_tokens"]) == (15, 22)
    order = [answer["choices"][0]["index"] for answer in answers]
    assert all(len(answer["choices"]) == 1 for answer in answers)
    text: dict[int, str] = defaultdict(str)
    roles: Counter[int] = Counter()
    finishes: Counter[int] = Counter()
    for answer in answers:
        (choice,) = answer["choices"]
        text[choice["index"]] += choice["delta"].get("content") or ""
        roles[choice["index"]] += "role" in choice["delta"]
        finishes[choice["index"]] += choice["finish_reason"] is not None
    assert dict(text) == {0: ECHO, 1: ECHO, 2: ECHO}
    assert roles == finishes == Counter({0: 1, 1: 1, 2: 1})
    # As they came: another choice's chunk arrived before the last of choice 0's.
    assert order != sorted(order)


def test_the_openai_client_streams_n_choices(three: Coordinator) -> None:
    stream = three.openai().chat.completions.create(model="mock", messages=HELLO, n=2, stream=True)
    text: dict[int, str] = defaultdict(str)
    for chunk in stream:
        for choice in chunk.choices:
            text[choice.index] += choice.delta.content or ""
    assert dict(text) == {0: ECHO, 1: ECHO}


def test_more_choices_than_children_serving_the_model_is_refused(three: Coordinator) -> None:
    response = _chat(three, "choices-too-many", n=4)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("unsupported_parameter", "n")
    assert "3 children serve the model 'mock'" in error["message"]


@pytest.mark.parametrize(
    ("field", "value"), [("n", 0), ("n", 129), ("presence_penalty", 9), ("top_logprobs", 21)]
)
def test_a_value_out_of_range_is_invalid_value(three: Coordinator, field: str, value: Any) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        three.openai().chat.completions.create(model="mock", messages=HELLO, **{field: value})  # type: ignore[arg-type]
    assert (refused.value.code, refused.value.param) == ("invalid_value", field)
    schemas.assert_valid(schemas.ERROR, refused.value.response.json())


def test_a_cancel_stops_every_choice_and_ends_the_stream_without_done(three: Coordinator) -> None:
    long = " ".join(f"word{i}" for i in range(200))  # 30 ms a word: 6 s, unless cancelled
    body = {"model": "mock", "messages": [{"role": "user", "content": long}], "n": 2, "stream": True}
    with httpx.stream(
        "POST",
        f"{three.url}/v1/chat/completions",
        json=body,
        headers={"X-Request-ID": "choices-cancel"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        events = payloads(response)
        first = next(events)
        assert isinstance(first, dict) and first["choices"][0]["delta"]["role"] == "assistant"
        cancelled = three.post("/v1/cancel/choices-cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["where"] == "choices"
        rest = list(events)
    assert DONE not in rest
    error = rest[-1]
    assert isinstance(error, dict) and error["error"]["code"] == "request_cancelled"
    schemas.assert_valid(schemas.ERROR, error)
    # Both children are free again, well before the 6 s the answers would have taken.
    wait_for(
        lambda: all(c["state"] == "ready" for c in three.children().values()), 3, "the children to be free"
    )


def test_a_choice_that_fails_fails_the_request_and_cancels_the_others(failing: Coordinator) -> None:
    response = _chat(failing, "choices-fail", n=2)
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "child_failed"
    schemas.assert_valid(schemas.ERROR, response.json())
    # alpha was answering choice 0 (slowly): it is told to stop rather than left to finish.
    _wait_child_log(failing, "alpha", "request_cancelled", "choices-fail~0")


def test_a_streamed_choice_that_fails_before_any_byte_is_a_plain_error(failing: Coordinator) -> None:
    body = {"model": "mock", "messages": HELLO, "n": 2, "stream": True}
    with httpx.stream(
        "POST",
        f"{failing.url}/v1/chat/completions",
        json=body,
        headers={"X-Request-ID": "choices-fail-s"},
        timeout=30,
    ) as response:
        assert response.status_code == 502
        assert json.loads(response.read())["error"]["code"] == "child_failed"
    _wait_child_log(failing, "alpha", "request_cancelled", "choices-fail-s~0")


def _wait_child_log(run: Coordinator, profile: str, event: str, request_id: str) -> None:
    path = Path(run.log_dir) / f"{profile}.log"

    def logged() -> bool:
        for line in path.read_text(errors="replace").splitlines():
            if event in line and request_id in line:
                return True
        return False

    wait_for(logged, 30, f"{profile} to log {event} for {request_id}")


def test_a_request_of_n_choices_counts_once_in_the_metrics(three: Coordinator) -> None:
    def served() -> float:
        text = three.get("/metrics").text
        found = re.search(r'^coordinator_requests_total\{model="mock",status="200"\} (\S+)$', text, re.M)
        return float(found.group(1)) if found else 0.0

    before = served()
    assert _chat(three, "choices-metrics", n=3).status_code == 200
    assert served() == before + 1
