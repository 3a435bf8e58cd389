"""GET /metrics: Prometheus text that parses, and counters that move with what happens."""

from __future__ import annotations

import os
import signal

from prometheus_client.parser import text_string_to_metric_families

from tests.support.coordinator import Coordinator, StartCoordinator
from tests.support.processes import wait_for

ASK = {"model": "mock", "messages": [{"role": "user", "content": "count me in"}]}


def scrape(run: Coordinator) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = run.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move_as_requests_are_served_refused_and_children_restart(
    start_coordinator: StartCoordinator,
) -> None:
    run = start_coordinator(("a", "b"))
    before = scrape(run)
    assert value(before, "coordinator_children", state="ready") == 2
    for lane in ("high", "normal", "low"):
        assert (("coordinator_queue_depth", (("lane", lane),))) in before
        assert value(before, "coordinator_queue_depth", lane=lane) == 0

    for _ in range(3):
        assert run.post("/v1/chat/completions", json=ASK).status_code == 200
    client = run.openai()
    assert (
        "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(stream=True, **ASK)
            if c.choices
        )
        == "echo: count me in"
    )
    assert run.post("/v1/chat/completions", content=b"not json").status_code == 400
    secret_prompt = {"model": "gpt-made-up", "messages": [{"role": "user", "content": "PROMPT-SECRET-42"}]}
    assert run.post("/v1/chat/completions", json=secret_prompt).status_code == 404

    # A request is counted when it ends on the server, which can be just after the client
    # has read the last byte of its stream: wait for the count rather than read it once.
    def all_counted() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        samples = scrape(run)
        return (
            samples if value(samples, "coordinator_requests_total", status="200", model="mock") == 4 else None
        )

    after = wait_for(all_counted, 30, "the four 200 answers to be counted")
    assert value(after, "coordinator_requests_total", status="400", model="none") == 1
    assert value(after, "coordinator_requests_total", status="404", model="other") == 1
    assert value(after, "coordinator_rejections_total", reason="invalid_json") == 1
    assert value(after, "coordinator_rejections_total", reason="model_not_found") == 1
    assert value(after, "coordinator_request_duration_seconds_count", stream="false") >= 3
    assert value(after, "coordinator_time_to_first_token_seconds_count", stream="true") == 1
    assert value(after, "coordinator_queue_wait_seconds_count") == 4

    victim = run.child("a")
    os.kill(victim["pid"], signal.SIGKILL)
    run.wait_state("a", "ready")
    wait_for(
        lambda: value(scrape(run), "coordinator_child_restarts_total", profile="a") == 1,
        30,
        "the restart counter",
    )
    text = run.get("/metrics").text
    assert "PROMPT-SECRET-42" not in text and "gpt-made-up" not in text


def test_retries_and_ejections_are_counted(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("bad", "good"), env={"MOCK_FAIL_REQUESTS": "bad"}, args=["--eject-after", "1"])
    for _ in range(3):
        assert run.post("/v1/chat/completions", json=ASK).status_code == 200
    samples = scrape(run)
    assert value(samples, "coordinator_retries_total", reason="failed") >= 1
    assert value(samples, "coordinator_child_ejections_total", profile="bad") >= 1
