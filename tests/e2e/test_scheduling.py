"""Scheduling under load and faults: one request per child, the queue, retries, disconnects."""

from __future__ import annotations

import json
import os
import signal
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.support.coordinator import Coordinator, StartCoordinator
from tests.support.processes import wait_for

ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": "one two three four five"}]
# A stream that, left alone, runs for many seconds (60 words): a test that stops it early can
# wait generously for the child to be freed and still tell that it did not just finish.
LONG: list[ChatCompletionMessageParam] = [{"role": "user", "content": " ".join(["word"] * 60)}]


def ask(coordinator: Coordinator, **headers: str) -> httpx.Response:
    return coordinator.post(
        "/v1/chat/completions", json={"model": "mock", "messages": ASK}, headers=headers, timeout=30
    )


def busy_child(coordinator: Coordinator) -> dict[str, Any] | None:
    return next((c for c in coordinator.children().values() if c["state"] == "busy"), None)


def test_never_two_requests_on_one_child(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("a", "b"), env={"MOCK_FIRST_TOKEN_MS": "150"})
    client = run.openai()
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda _: client.chat.completions.with_raw_response.create(model="mock", messages=ASK),
                range(8),
            )
        )
    assert all(a.parse().choices[0].message.content == "echo: one two three four five" for a in answers)
    # A child asked twice at once answers 429 child_busy, which the coordinator would retry and log.
    assert not run.events("request_retry")
    served = run.children()
    assert served["a"]["served"] + served["b"]["served"] == 8
    assert served["a"]["served"] >= 1 and served["b"]["served"] >= 1


def test_full_queue_is_429_with_retry_after(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("solo",), env={"MOCK_FIRST_TOKEN_MS": "4000"}, args=["--max-queue", "1"])
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(ask, run)
        wait_for(lambda: busy_child(run), 30, "the child to take the first request")
        second = pool.submit(ask, run)
        wait_for(lambda: run.get("/ready").json()["queue"]["waiting"] == 1, 30, "the second request to queue")
        third = ask(run)
        assert third.status_code == 429
        assert third.json()["error"]["code"] == "queue_full"
        assert int(third.headers["retry-after"]) >= 1
        assert first.result().status_code == 200
        assert second.result().status_code == 200


def test_waiting_too_long_is_503_with_retry_after(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("solo",), env={"MOCK_FIRST_TOKEN_MS": "4000"}, args=["--queue-timeout", "0.5"])
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(ask, run)
        wait_for(lambda: busy_child(run), 30, "the child to take the first request")
        late = ask(run)
        assert late.status_code == 503
        assert late.json()["error"]["code"] == "queue_timeout"
        assert int(late.headers["retry-after"]) >= 1
        assert first.result().status_code == 200


def accepted(coordinator: Coordinator) -> int:
    """The requests `solo` has served or is serving, and those waiting: read in that order, a
    request that moves from the queue to the child in between is missed, never counted twice."""
    solo = coordinator.child("solo")
    waiting: int = coordinator.get("/ready").json()["queue"]["waiting"]
    return int(solo["served"]) + int(solo["state"] == "busy") + waiting


def test_queue_is_served_in_arrival_order(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("solo",), env={"MOCK_FIRST_TOKEN_MS": "1500"})
    order: list[int] = []
    lock = threading.Lock()

    def numbered(n: int) -> None:
        response = ask(run, **{"X-Request-ID": f"order-{n}"})
        assert response.status_code == 200
        with lock:
            order.append(n)

    with ThreadPoolExecutor(4) as pool:
        futures: list[Future[None]] = [pool.submit(numbered, 0)]
        wait_for(lambda: busy_child(run), 30, "the child to take request 0")
        for n in range(1, 4):
            futures.append(pool.submit(numbered, n))
            # Each one is taken in before the next is sent, so the arrival order is known (on a
            # loaded machine the one before may already be served: counted all the same).
            wait_for(lambda: accepted(run) == n + 1, 30, f"request {n} to be taken in")  # noqa: B023
        for future in futures:
            future.result()
    assert order == [0, 1, 2, 3]


def test_child_killed_before_first_byte_client_still_answered(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("a", "b"), env={"MOCK_FIRST_TOKEN_MS": "4000"})
    client = run.openai()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(client.chat.completions.with_raw_response.create, model="mock", messages=ASK)
        victim = wait_for(lambda: busy_child(run), 30, "a child to take the request")
        os.kill(victim["pid"], signal.SIGKILL)
        raw = future.result(timeout=20)
    assert raw.parse().choices[0].message.content == "echo: one two three four five"
    assert raw.headers["x-coordinator-child"] != victim["id"]
    assert run.events("request_retry")
    # The killed child comes back on its own.
    run.wait_state(victim["id"], "ready")


def test_first_chunk_arrives_while_the_child_is_still_generating(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("solo",), env={"MOCK_TOKEN_MS": "1000"})
    stream = run.openai().chat.completions.create(model="mock", messages=ASK, stream=True)
    first = next(iter(stream))
    assert first.choices[0].delta.content == "echo:"
    # The mock still has five words to produce: the child is still busy with this request.
    child = run.child("solo")
    assert child["state"] == "busy"
    assert child["request_id"] == first.id.removeprefix("chatcmpl-")
    rest = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert rest == " one two three four five"


def test_client_disconnect_frees_the_child(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("solo",), env={"MOCK_TOKEN_MS": "500"})
    body = {"model": "mock", "messages": LONG, "stream": True}
    with httpx.stream("POST", run.url + "/v1/chat/completions", json=body, timeout=10) as response:
        assert response.status_code == 200
        chunks = response.iter_raw()  # held: dropping the iterator would close the connection
        next(chunks)
        assert run.child("solo")["state"] == "busy"
    # The stream was closed after its first chunk: the child is freed long before it would have
    # finished (30 s).
    run.wait_state("solo", "ready", timeout=10)
    child_log = (run.log_dir / "solo.log").read_text()
    assert "cancel" in child_log or "disconnect" in child_log
    assert ask(run).status_code == 200


def test_disconnect_while_queued_leaves_the_queue(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("solo",), env={"MOCK_FIRST_TOKEN_MS": "6000"})
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(ask, run)
        wait_for(lambda: busy_child(run), 30, "the child to take the first request")
        with pytest.raises(httpx.ReadTimeout):
            run.post("/v1/chat/completions", json={"model": "mock", "messages": ASK}, timeout=0.5)
        wait_for(lambda: run.get("/ready").json()["queue"]["waiting"] == 0, 30, "the queue to empty")
        # Emptied by the disconnect, not by the first request's end.
        assert not first.done()
        assert first.result().status_code == 200


def test_cancel_a_running_stream(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("solo",), env={"MOCK_TOKEN_MS": "400"})
    client = run.openai(default_headers={"X-Request-ID": "stop-me"})
    stream = client.chat.completions.create(model="mock", messages=LONG, stream=True)
    chunks = iter(stream)
    next(chunks)
    response = run.post("/v1/cancel/stop-me")
    assert response.status_code == 200
    assert response.json() == {"id": "stop-me", "cancelled": True, "where": "child", "child": "solo"}
    with pytest.raises(openai.APIError, match="cancel"):
        for _ in chunks:
            pass
    run.wait_state("solo", "ready", timeout=10)  # left alone, the stream would run 24 s


def test_cancel_a_running_non_stream_request(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("solo",), env={"MOCK_FIRST_TOKEN_MS": "20000"})
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(ask, run, **{"X-Request-ID": "long-one"})
        wait_for(lambda: busy_child(run), 30, "the child to take the request")
        assert run.post("/v1/cancel/long-one").status_code == 200
        response = future.result(timeout=10)
    assert response.status_code == 499
    assert response.json()["error"]["code"] == "request_cancelled"
    run.wait_state("solo", "ready", timeout=10)  # left alone, the request would take 20 s


def test_cancel_a_queued_request(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("solo",), env={"MOCK_FIRST_TOKEN_MS": "5000"})
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(ask, run)
        wait_for(lambda: busy_child(run), 30, "the child to take the first request")
        queued = pool.submit(ask, run, **{"X-Request-ID": "in-line"})
        wait_for(lambda: run.get("/ready").json()["queue"]["waiting"] == 1, 30, "the request to queue")
        cancelled = run.post("/v1/cancel/in-line")
        assert cancelled.json() == {"id": "in-line", "cancelled": True, "where": "queue"}
        response = queued.result(timeout=5)
        assert response.status_code == 499
        assert response.json()["error"]["code"] == "request_cancelled"
        assert first.result().status_code == 200


def test_failing_child_is_ejected_and_its_requests_succeed_elsewhere(
    start_coordinator: StartCoordinator,
) -> None:
    run = start_coordinator(
        ("bad", "good"),
        env={"MOCK_FAIL_REQUESTS": "bad"},
        # 5 s: long enough to be seen in cooldown on a loaded machine.
        args=["--eject-after", "2", "--eject-cooldown", "5"],
    )
    for _ in range(6):
        response = ask(run)
        assert response.status_code == 200
        assert response.headers["x-coordinator-child"] == "good"
    bad = run.wait_state("bad", "cooldown", timeout=30)
    assert "ejected" in json.dumps(run.events("child_state"))
    assert bad["pid"] is not None
    # The cooldown ends on its own; the child is offered requests again.
    run.wait_state("bad", "ready", timeout=30)
