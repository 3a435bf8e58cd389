"""Priority lanes under load, on mock children made slow so that a queue forms.

Order is read from the coordinator's own request log (one line per request, as it ends):
with one child serving one request at a time, the order requests end in is the order
they were served in.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.support.coordinator import Coordinator, StartCoordinator
from tests.support.processes import wait_for

ASK = {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}
# The mock echoes word by word: with SLOW, this one would hold the child for a minute (it
# is cancelled once the queue is in place: no race with a busy machine), the others for a
# fraction of a second.
HOLD = [{"role": "user", "content": " ".join(["wait"] * 600)}]
SLOW = {"MOCK_FIRST_TOKEN_MS": "100", "MOCK_TOKEN_MS": "100"}
LANES = ("high", "normal", "low")


def ask(run: Coordinator, request_id: str, priority: str | None = None, key: str | None = None,
        **body: Any) -> httpx.Response:  # fmt: skip
    headers = {"X-Request-ID": request_id}
    if priority is not None:
        headers["X-Priority"] = priority
    if key is not None or run.api_key is not None:
        headers["Authorization"] = f"Bearer {key or run.api_key}"
    return run.post("/v1/chat/completions", json={**ASK, **body}, headers=headers, timeout=60)


def by_lane(run: Coordinator) -> dict[str, int]:
    lanes: dict[str, int] = run.get("/health").json()["queue"]["by_lane"]
    return lanes


def served_order(run: Coordinator, prefix: str) -> list[str]:
    return [
        event["request_id"]
        for event in run.events("request")
        if event.get("path") == "/v1/chat/completions" and event["request_id"].startswith(prefix)
    ]


def occupy(pool: ThreadPoolExecutor, run: Coordinator, request_id: str = "hold") -> Future[httpx.Response]:
    """A request that holds a child until `free` cancels it, so that those sent meanwhile wait."""
    holder = pool.submit(ask, run, request_id, messages=HOLD)
    wait_for(
        lambda: any(c["request_id"] == request_id for c in run.children().values()),
        30,
        f"a child to take {request_id}",
    )
    return holder


def free(run: Coordinator, holder: Future[httpx.Response], request_id: str = "hold") -> None:
    assert run.post(f"/v1/cancel/{request_id}").json()["cancelled"] is True
    assert holder.result().status_code == 499


def queue_in_order(pool: ThreadPoolExecutor, run: Coordinator, requests: list[tuple[str, str | None]],
                   waiting: int = 0, **given: Any) -> list[Future[httpx.Response]]:  # fmt: skip
    """Send each request once the one before it waits (`waiting` already do), so that the
    arrival order is known."""
    futures = []
    for index, (request_id, priority) in enumerate(requests):
        futures.append(pool.submit(ask, run, request_id, priority, **given))
        wait_for(
            lambda: sum(by_lane(run).values()) == waiting + index + 1,  # noqa: B023
            30,
            f"{request_id} to queue",
        )
    return futures


def test_the_queue_serves_high_then_normal_then_low_each_in_arrival_order(
    start_coordinator: StartCoordinator,
) -> None:
    run = start_coordinator(("solo",), env=SLOW, args=["--max-passed-over", "600"])
    arrivals = [("p-low-1", "low"), ("p-normal-1", None), ("p-high-1", "high"), ("p-low-2", "LOW"),
                ("p-high-2", "high"), ("p-normal-2", "normal")]  # fmt: skip
    with ThreadPoolExecutor(len(arrivals) + 1) as pool:
        holder = occupy(pool, run)
        futures = queue_in_order(pool, run, arrivals)
        assert by_lane(run) == {"high": 2, "normal": 2, "low": 2}
        metrics = run.get("/metrics").text
        for lane in LANES:
            assert f'coordinator_queue_depth{{lane="{lane}"}} 2.0' in metrics
        assert "queue 6/100 waiting (high 2, normal 2, low 2)" in run.status().stdout
        free(run, holder)
        assert all(future.result().status_code == 200 for future in futures)
    wait_for(lambda: len(served_order(run, "p-")) == 6, 30, "every request to be logged")
    assert served_order(run, "p-") == [
        "p-high-1",
        "p-high-2",
        "p-normal-1",
        "p-normal-2",
        "p-low-1",
        "p-low-2",
    ]
    assert by_lane(run) == {"high": 0, "normal": 0, "low": 0}


# `alone`: its assertion is a latency, which holds on a quiet machine (scripts/test.sh).
@pytest.mark.alone
def test_a_low_request_is_served_within_the_bound_under_a_stream_of_high_ones(
    start_coordinator: StartCoordinator,
) -> None:
    service, bound = 0.3, 2.0
    run = start_coordinator(
        ("solo",),
        env={"MOCK_FIRST_TOKEN_MS": str(int(service * 1000))},
        args=["--max-passed-over", str(bound)],
    )
    stop = threading.Event()
    sent = iter(range(10_000))
    lock = threading.Lock()

    def keep_asking_high() -> None:
        # Three of these keep the high lane from ever emptying: one served, two waiting.
        while not stop.is_set():
            with lock:
                number = next(sent)
            assert ask(run, f"s-high-{number}", "high").status_code == 200

    with ThreadPoolExecutor(4) as pool:
        streams = [pool.submit(keep_asking_high) for _ in range(3)]
        try:
            wait_for(lambda: by_lane(run)["high"] >= 2, 30, "high requests to queue")
            started = time.monotonic()
            low = ask(run, "s-low", "low")
            waited = time.monotonic() - started
            assert low.status_code == 200
            # Past the bound it goes before the waiting high ones: it waits for at most the
            # bound and the request in hand (plus the slack of a shared machine).
            assert bound <= waited + 0.1 and waited < bound + 2 * service + 2.0, waited
            # It was passed over while within the bound, and the high stream never stopped.
            assert by_lane(run)["high"] >= 1
        finally:
            stop.set()
            for stream in streams:
                stream.result(timeout=30)
    order = served_order(run, "s-")
    passed = order.index("s-low")
    # High ones went first while it was within the bound, and on after it.
    assert passed >= 2 and len(order) > passed + 1, order


def test_an_invalid_priority_is_400_naming_the_header(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("solo",))
    refused = ask(run, "bad-1", "urgent")
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "invalid_priority" and "X-Priority" in error["message"]
    assert error["type"] == "invalid_request_error"
    assert refused.headers["x-request-id"] == "bad-1"
    assert ask(run, "good-1", "High").status_code == 200


def test_n_choices_wait_in_their_request_s_lane(start_coordinator: StartCoordinator) -> None:
    # n choices need n children of their own: two, both held while the choices queue.
    run = start_coordinator(("a", "b"), env=SLOW)
    with ThreadPoolExecutor(3) as pool:
        holders = [occupy(pool, run, f"hold-{n}") for n in range(2)]
        choices = pool.submit(ask, run, "n-high", "high", n=2)
        wait_for(lambda: by_lane(run)["high"] == 2, 30, "both choices to queue in the high lane")
        assert by_lane(run) == {"high": 2, "normal": 0, "low": 0}
        for n, holder in enumerate(holders):
            free(run, holder, f"hold-{n}")
        answer = choices.result()
        assert answer.status_code == 200 and len(answer.json()["choices"]) == 2


def test_a_key_s_default_priority_and_the_header_over_it(start_coordinator: StartCoordinator) -> None:
    keys = ("key-batch-0000", "key-urgent-1111")
    run = start_coordinator(
        ("solo",),
        env={**SLOW, "COORDINATOR_API_KEY": ",".join(keys)},
        args=["--key-priority", "client-0=low,client-1=high", "--max-passed-over", "600"],
        api_key=keys[0],
    )
    with ThreadPoolExecutor(5) as pool:
        holder = occupy(pool, run)
        futures = [
            *queue_in_order(pool, run, [("k-batch", None)], key=keys[0]),
            *queue_in_order(pool, run, [("k-asked-normal", "normal")], waiting=1, key=keys[1]),
        ]
        futures.append(pool.submit(ask, run, "k-urgent", None, key=keys[1]))
        wait_for(lambda: sum(by_lane(run).values()) == 3, 30, "the urgent key's request to queue")
        assert by_lane(run) == {"high": 1, "normal": 1, "low": 1}
        free(run, holder)
        assert all(future.result().status_code == 200 for future in futures)
    wait_for(lambda: len(served_order(run, "k-")) == 3, 30, "every request to be logged")
    assert served_order(run, "k-") == ["k-urgent", "k-asked-normal", "k-batch"]
