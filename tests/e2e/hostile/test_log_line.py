"""Every request gets its `request` log line, whatever odd value it carries (issue 10, item 8).

A model name with a lone surrogate made the line fail to encode, so a client could keep
its request out of the log; a newline must not let a client forge a line either.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.coordinator import Coordinator, Runs
from tests.support.processes import wait_for

# Raw JSON text of the "model" value: escapes that decode to strings orjson refuses, and worse.
ODD_MODELS = {
    "lone high surrogate": r'"\ud800"',
    "lone low surrogate": r'"\udfff"',
    "reversed pair": r'"\udc00\ud800"',
    "surrogate in a name": r'"gemini-\ud83d-pro"',
    "forged line": r'"m\n{\"event\": \"forged\", \"level\": \"info\"}\u0000"',
    "long name": '"' + "m" * 20000 + '"',
}


@pytest.fixture(scope="module")
def run(module_runs: Runs) -> Coordinator:
    return module_runs.start(("solo",))


def request_lines(run: Coordinator, request_id: str) -> list[dict[str, Any]]:
    return [event for event in run.events("request") if event.get("request_id") == request_id]


@pytest.mark.parametrize(("name", "model"), ODD_MODELS.items(), ids=ODD_MODELS.keys())
def test_a_request_with_an_odd_model_gets_its_line(run: Coordinator, name: str, model: str) -> None:
    request_id = "odd-" + name.replace(" ", "-")
    body = '{"model": ' + model + ', "messages": [{"role": "user", "content": "hi"}]}'
    answer = run.post(
        "/v1/chat/completions",
        content=body.encode(),
        headers={"Content-Type": "application/json", "X-Request-ID": request_id},
    )
    assert 400 <= answer.status_code < 500, answer.text

    lines = wait_for(lambda: request_lines(run, request_id), 30, f"the request line of {request_id}")

    assert len(lines) == 1
    line = lines[0]
    assert line["status"] == answer.status_code and line["path"] == "/v1/chat/completions"
    # What the coordinator recorded of the model is the client's value, not a mangled one.
    assert line["model"] in (None, json.loads(model))
    assert not run.events("forged")


def test_the_coordinator_serves_and_logs_normally_afterwards(run: Coordinator) -> None:
    answer = run.post(
        "/v1/chat/completions",
        json={"model": "mock", "messages": [{"role": "user", "content": "still here?"}]},
        headers={"X-Request-ID": "after-odd"},
    )
    assert answer.status_code == 200
    (line,) = wait_for(lambda: request_lines(run, "after-odd"), 30, "the request line")
    assert line["status"] == 200 and line["model"] == "mock" and line["child"] == "solo"
