"""A stream on an adapter's route that cannot finish ends in that API's own failure event
(Responses: `response.failed`; Anthropic: `event: error`), never with a completion: here a
request cancelled while its answer streams, with each API's official client reading it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import pytest

from tests.support.anthropic import anthropic_client
from tests.support.coordinator import Coordinator, Runs
from tests.support.processes import wait_for

# Long enough (70 words, 300 ms each) that a cancel sent after the first event always finds it running.
HELLO: Any = [{"role": "user", "content": " ".join(["a long answer of several words please"] * 10)}]


@pytest.fixture(scope="module")
def slow(module_runs: Runs) -> Coordinator:
    return module_runs.start(("s1",), env={"MOCK_TOKEN_MS": "300"})


def _cancel(run: Coordinator, request_id: str) -> None:
    answer = run.post(f"/v1/cancel/{request_id}")
    assert answer.status_code == 200, answer.text


def test_a_cancelled_responses_stream_ends_with_response_failed(slow: Coordinator) -> None:
    client = slow.openai(default_headers={"X-Request-ID": "resp-cancel"})
    events = iter(client.responses.create(model="mock", input=HELLO, stream=True))
    assert next(events).type == "response.created"
    _cancel(slow, "resp-cancel")
    rest = [event.type for event in events]
    assert rest[-1] == "response.failed"
    assert "response.completed" not in rest
    slow.wait_state("s1", "ready", timeout=30)


def test_a_cancelled_messages_stream_ends_with_an_error_event(slow: Coordinator) -> None:
    client = anthropic_client(slow, default_headers={"X-Request-ID": "msg-cancel"})
    events = iter(client.messages.create(model="mock", max_tokens=100, messages=HELLO, stream=True))
    assert next(events).type == "message_start"
    _cancel(slow, "msg-cancel")
    with pytest.raises(anthropic.APIStatusError, match="cancel"):
        for _ in events:
            pass
    slow.wait_state("s1", "ready", timeout=30)


def test_a_cancelled_whole_message_is_a_499_in_anthropics_shape(slow: Coordinator) -> None:
    client = anthropic_client(slow, default_headers={"X-Request-ID": "msg-whole"})

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(client.messages.create, model="mock", max_tokens=100, messages=HELLO)
        wait_for(lambda: slow.child("s1")["state"] == "busy", 30, "the child to take the request")
        _cancel(slow, "msg-whole")
        with pytest.raises(anthropic.APIStatusError) as caught:
            future.result(timeout=10)
    assert caught.value.status_code == 499
    body: Any = caught.value.body
    assert body["type"] == "error"
    slow.wait_state("s1", "ready", timeout=30)
