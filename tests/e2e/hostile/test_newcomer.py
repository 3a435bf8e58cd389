"""What a newcomer met on a first run (issue 10, "Also found while using it as a newcomer would").

The real coordinator with real mock children on real sockets: the models listed during
start-up are the ones the scheduler serves, and the first `queue_full` does not ask a
client to come back long before a slot can be free. (A stopped child exits 0: see
tests/e2e/test_browser.py, as the demo runs Chromium.)
"""

from __future__ import annotations

import threading
import time

from tests.support.coordinator import StartCoordinator
from tests.support.processes import wait_for

STARTUP_MS = 8000  # long enough for several polls while starting, on a loaded machine too


def test_models_listed_during_start_up_are_served(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(env={"MOCK_STARTUP_MS": str(STARTUP_MS)}, wait_ready=False)
    polls_while_starting = 0
    deadline = time.monotonic() + 30
    while True:
        listed = [model["id"] for model in run.get("/v1/models").json()["data"]]
        # Read after the list: a child ready now may have been ready for it; one not ready now
        # was not ready while it was made (no child leaves `ready` during a clean start).
        states = {child["state"] for child in run.children().values()}
        if "ready" not in states:
            polls_while_starting += 1
            # Nothing can serve yet, so nothing is offered: a name listed now is one the
            # scheduler could refuse by the time the child has said what it really offers.
            assert listed == [], f"models listed while every child is still starting ({states}): {listed}"
        for model in listed:
            answer = run.post(
                "/v1/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "listed"}]},
                timeout=10,
            )
            assert answer.status_code == 200, f"{model!r} was listed but answered {answer.text}"
            assert answer.json()["choices"][0]["message"]["content"] == "echo: listed"
        if states == {"ready"}:
            break
        assert time.monotonic() < deadline, f"children still not ready: {states}"
        time.sleep(0.05)
    assert polls_while_starting >= 5, "the start-up was not watched"
    assert [model["id"] for model in run.get("/v1/models").json()["data"]] == ["mock"]


def test_first_queue_full_retry_after_is_conservative(start_coordinator: StartCoordinator) -> None:
    first_token_ms = 3000
    run = start_coordinator(
        ("solo",), env={"MOCK_FIRST_TOKEN_MS": str(first_token_ms)}, args=["--max-queue", "1"]
    )
    ids = ["held", "queued"]
    answers: dict[str, int] = {}

    def ask(request_id: str) -> None:
        response = run.post(
            "/v1/chat/completions",
            json={"model": "mock", "messages": [{"role": "user", "content": "slow"}]},
            headers={"X-Request-ID": request_id},
            timeout=15,
        )
        answers[request_id] = response.status_code

    threads = [threading.Thread(target=ask, args=(request_id,)) for request_id in ids]
    threads[0].start()
    wait_for(lambda: run.child("solo")["request_id"] == "held", 30, "the child to take the first request")
    threads[1].start()
    wait_for(lambda: run.get("/health").json()["queue"]["waiting"] == 1, 30, "the second to wait")

    refused = run.post(
        "/v1/chat/completions", json={"model": "mock", "messages": [{"role": "user", "content": "x"}]}
    )

    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "queue_full"
    retry_after = int(refused.headers["retry-after"])
    # A client that comes back sooner than the request in hand and the one waiting can take
    # is refused again: here that is at least 2 x 3 s.
    assert retry_after >= 2 * first_token_ms / 1000
    # No answer timed yet: each is taken to last min(30 s, --first-byte-timeout 300 s) for
    # the one waiting and the one to come, on one child: 60 s (was 1 s).
    assert retry_after == 60

    # Nothing left running: both are cancelled, as their clients would.
    for request_id in ids:
        assert run.post(f"/v1/cancel/{request_id}").status_code == 200
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
    assert answers == {"held": 499, "queued": 499}
