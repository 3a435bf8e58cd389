"""The usage ledger with real processes: rows per request, reports, retention, a SIGKILL,
and a data folder that cannot be written."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from coordinator.ledger.store import FILE_NAME, Store
from tests.support.coordinator import COORDINATOR, Coordinator, Runs, StartCoordinator
from tests.support.processes import wait_for

KEYS = ("ledger-key-one", "ledger-key-two")
SECRET_PROMPT = "the-prompt-that-must-never-be-stored"
ENV = {"MOCK_MODELS": "mock,mock-2", "MOCK_USAGE": "7,5,2"}


def ask(model: str = "mock", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": SECRET_PROMPT}], **extra}


def ledger_file(run: Coordinator) -> Path:
    return run.log_dir.parent / "data" / FILE_NAME


def rows(path: Path, where: str = "", args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    db = sqlite3.connect(path, timeout=5)
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute(f"SELECT * FROM requests {where}", args)]
    except sqlite3.OperationalError:  # the writer has not made the table yet
        return []
    finally:
        db.close()


def wait_rows(run: Coordinator, ids: list[str]) -> dict[str, dict[str, Any]]:
    marks = ",".join("?" * len(ids))

    def written() -> dict[str, dict[str, Any]] | None:
        found = {
            row["request_id"]: row
            for row in rows(ledger_file(run), f"WHERE request_id IN ({marks})", tuple(ids))
        }
        return found if len(found) == len(ids) else None

    result: dict[str, dict[str, Any]] = wait_for(written, 30, f"ledger rows for {ids}")
    return result


@pytest.fixture(scope="module")
def run(module_runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> Coordinator:
    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text("\n".join(KEYS) + "\n")
    return module_runs.start(("alpha", "beta"), env=ENV, args=["--api-key-file", str(keys)], api_key=KEYS[0])


def test_rows_for_stream_whole_and_errors(run: Coordinator) -> None:
    plain = run.post("/v1/chat/completions", json=ask(), headers={**run._auth(), "X-Request-ID": "led-plain"})
    assert plain.status_code == 200
    streamed = run.post(
        "/v1/chat/completions",
        json=ask(stream=True, stream_options={"include_usage": True}),
        headers={**run._auth(), "X-Request-ID": "led-stream"},
    )
    assert streamed.status_code == 200 and "[DONE]" in streamed.text
    bare = run.post(
        "/v1/chat/completions", json=ask(stream=True), headers={**run._auth(), "X-Request-ID": "led-bare"}
    )
    assert bare.status_code == 200
    # Its counts reach the ledger in a note that the client never receives.
    assert "usage" not in bare.text and bare.text.endswith("data: [DONE]\n\n")
    wrong = run.post(
        "/v1/chat/completions",
        json=ask("no-such-model"),
        headers={**run._auth(), "X-Request-ID": "led-error"},
    )
    assert wrong.status_code >= 400
    adapted = run.post(
        "/v1/responses",
        json={"model": "mock", "input": SECRET_PROMPT},
        headers={**run._auth(), "X-Request-ID": "led-responses"},
    )
    assert adapted.status_code == 200, adapted.text

    found = wait_rows(run, ["led-plain", "led-stream", "led-bare", "led-error", "led-responses"])
    for request_id in ("led-plain", "led-stream", "led-bare", "led-responses"):
        row = found[request_id]
        assert row["profile"] in ("alpha", "beta")
        assert (row["status"], row["error_code"], row["model"]) == (200, None, "mock")
        assert (row["prompt_tokens"], row["completion_tokens"], row["reasoning_tokens"]) == (7, 5, 2)
        assert row["ttft_ms"] > 0 and row["duration_ms"] >= row["ttft_ms"]
        assert row["key"] == "client-0"
    assert (found["led-plain"]["stream"], found["led-stream"]["stream"], found["led-bare"]["stream"]) == (
        0,
        1,
        1,
    )
    assert found["led-responses"]["route"] == "/v1/responses"
    error = found["led-error"]
    assert error["status"] == wrong.status_code and error["error_code"] == wrong.json()["error"]["code"]
    assert error["prompt_tokens"] is None
    # No prompt, answer or key in the file (nor in its write-ahead log).
    for path in ledger_file(run).parent.iterdir():
        data = path.read_bytes()
        assert SECRET_PROMPT.encode() not in data and KEYS[0].encode() not in data


def usage(run: Coordinator, **params: Any) -> dict[str, Any]:
    response = run.get("/admin/usage", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_reports_group_by_profile_model_day_and_key(run: Coordinator) -> None:
    since = time.time()
    ids = []
    for index, (model, key) in enumerate([("mock", 0), ("mock", 1), ("mock-2", 1), ("mock-2", 1)]):
        request_id = f"led-report-{index}"
        ids.append(request_id)
        headers = {"Authorization": f"Bearer {KEYS[key]}", "X-Request-ID": request_id}
        assert run.post("/v1/chat/completions", json=ask(model), headers=headers).status_code == 200
    found = wait_rows(run, ids)
    window = {"from": since, "to": time.time() + 1}

    by_model = {row["group"]: row for row in usage(run, group_by="model", **window)["data"]}
    assert {name: row["requests"] for name, row in by_model.items()} == {"mock": 2, "mock-2": 2}
    assert by_model["mock-2"]["prompt_tokens"] == 14 and by_model["mock-2"]["completion_tokens"] == 10
    assert by_model["mock"]["errors"] == 0 and by_model["mock"]["ttft_p50_ms"] > 0

    by_key = {row["group"]: row["requests"] for row in usage(run, group_by="key", **window)["data"]}
    assert by_key == {"client-0": 1, "client-1": 3}

    by_profile = {row["group"]: row["requests"] for row in usage(run, group_by="profile", **window)["data"]}
    expected: dict[str, int] = {}
    for row in found.values():
        expected[row["profile"]] = expected.get(row["profile"], 0) + 1
    assert by_profile == expected

    today = dt.datetime.fromtimestamp(since, dt.UTC).date().isoformat()
    by_day = usage(run, group_by="day", **window)["data"]
    assert [(row["group"], row["requests"]) for row in by_day] == [(today, 4)]
    # Dates work as bounds: nothing before today, everything from it.
    assert usage(run, group_by="day", to=today)["data"] == []
    assert usage(run, group_by="day", **{"from": today})["data"][0]["requests"] >= 4


def test_usage_refuses_a_bad_query_and_a_missing_key(run: Coordinator) -> None:
    bad = run.get("/admin/usage", params={"group_by": "colour"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "group_by"
    assert run.get("/admin/usage", params={"from": "yesterday"}).json()["error"]["param"] == "from"
    assert httpx.get(run.url + "/admin/usage", timeout=10).status_code == 401


def test_usage_command_prints_a_table_and_json(run: Coordinator) -> None:
    clean = {name: value for name, value in os.environ.items() if not name.startswith("COORDINATOR_")}
    base = [*COORDINATOR, "usage", "--url", run.url, "--api-key", KEYS[1], "--group-by", "model"]
    done = subprocess.run(base, capture_output=True, text=True, timeout=60, env=clean)
    assert done.returncode == 0, done.stderr
    title, _, header, *lines = done.stdout.splitlines()
    assert title == "usage by model" and header.split()[:2] == ["GROUP", "REQUESTS"]
    assert {line.split()[0] for line in lines} >= {"mock", "mock-2"}
    as_json = subprocess.run([*base, "--json"], capture_output=True, text=True, timeout=60, env=clean)
    assert json.loads(as_json.stdout)["group_by"] == "model"
    refused = subprocess.run(
        [*COORDINATOR, "usage", "--url", run.url], capture_output=True, text=True, timeout=60, env=clean
    )
    assert refused.returncode == 1 and "refused the key" in refused.stderr


def test_retention_deletes_old_rows(start_coordinator: StartCoordinator, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = Store(data / FILE_NAME)
    now = time.time()
    old = (
        now - 3 * 86400,
        "led-old",
        "/v1/chat/completions",
        "alpha",
        "mock",
        200,
        None,
        0,
        1,
        1,
        0,
        5.0,
        9.0,
        None,
    )
    recent = (now - 3600, "led-recent", *old[2:])
    store.insert([old, recent])
    store.close()
    run = start_coordinator(("alpha",), args=["--data-dir", str(data), "--ledger-days", "1"])
    wait_for(lambda: not rows(data / FILE_NAME, "WHERE request_id = 'led-old'"), 30, "the old row to go")
    assert [row["request_id"] for row in rows(data / FILE_NAME)] == ["led-recent"]
    assert run.events("ledger_pruned")[0]["deleted"] == 1


def scrape(run: Coordinator, name: str) -> float:
    for line in run.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def test_sigkill_loses_at_most_the_last_batch(start_coordinator: StartCoordinator) -> None:
    # The bound under test is a time: an entry is on disk one flush interval (0.5 s) after its
    # request ended. Requests go on until the kill; every one that ended more than an interval
    # (and a margin for the commit on a loaded machine) before it must have survived.
    run = start_coordinator(("alpha", "beta"))
    ended: dict[str, float] = {}
    started = time.monotonic()

    def enough() -> bool:
        # 3 s of requests, and (a loaded machine serves fewer) at least 5 to judge by.
        now = time.monotonic()
        return now - started >= 3.0 and sum(at < now - 0.5 - 0.5 for at in ended.values()) >= 5

    while not enough():
        assert time.monotonic() - started < 60, f"too few requests to judge: {len(ended)} in 60 s"
        request_id = f"led-kill-{len(ended)}"
        answer = run.post("/v1/chat/completions", json=ask(), headers={"X-Request-ID": request_id})
        assert answer.status_code == 200
        ended[request_id] = time.monotonic()
    killed_at = time.monotonic()
    os.kill(run.process.pid, signal.SIGKILL)
    run.process.wait(10)
    path = ledger_file(run)
    db = sqlite3.connect(path, timeout=5)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()
    written = {row["request_id"] for row in rows(path)}
    older = {request_id for request_id, at in ended.items() if at < killed_at - 0.5 - 0.5}
    assert len(older) >= 5, f"too few requests to judge: {len(ended)} in 3 s"
    assert older <= written, f"lost though older than a batch: {sorted(older - written)}"


def test_unwritable_data_dir_is_logged_and_requests_served(
    start_coordinator: StartCoordinator, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    run = start_coordinator(("alpha",), args=["--data-dir", str(blocker / "data")])
    for index in range(3):
        answer = run.post("/v1/chat/completions", json=ask(), headers={"X-Request-ID": f"led-nodisk-{index}"})
        assert answer.status_code == 200
    wait_for(lambda: run.events("ledger_write_failed"), 30, "the failed write to be logged")
    failure = run.events("ledger_write_failed")[0]
    assert str(blocker) in failure["path"] and "requests are still served" in failure["hint"]
    wait_for(lambda: scrape(run, "coordinator_ledger_rows_failed_total") >= 3, 30, "the lost rows counted")
    assert run.post("/v1/chat/completions", json=ask()).status_code == 200
    assert run.get("/admin/usage").json()["data"] == []


def test_sigterm_writes_every_row_before_exit(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("alpha",))
    ids = [f"led-term-{index}" for index in range(5)]
    for request_id in ids:
        answer = run.post("/v1/chat/completions", json=ask(), headers={"X-Request-ID": request_id})
        assert answer.status_code == 200
    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(30) == 0
    assert {row["request_id"] for row in rows(ledger_file(run))} >= set(ids)
