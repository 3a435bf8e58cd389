"""`coordinator status` against a live coordinator with mock children, and against nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any

import httpx
import pytest

from tests.support.coordinator import Coordinator, Runs, StartCoordinator
from tests.support.processes import free_port, wait_for

STATUS = [sys.executable, "-m", "coordinator", "status"]


def status(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # The caller's own COORDINATOR_* settings must not leak into the command under test.
    clean = {name: value for name, value in os.environ.items() if not name.startswith("COORDINATOR_")}
    return subprocess.run(
        [*STATUS, *args], capture_output=True, text=True, timeout=60, env={**clean, **(env or {})}
    )


@pytest.fixture(scope="module")
def run(module_runs: Runs) -> Coordinator:
    # A slow first token keeps a request in flight long enough to be seen, even when
    # `coordinator status` starts slowly on a loaded machine.
    return module_runs.start(("alpha", "beta"), env={"MOCK_FIRST_TOKEN_MS": "10000"})


def test_table_lists_every_child(run: Coordinator) -> None:
    children = run.children()
    done = status("--url", run.url)
    assert done.returncode == 0, done.stderr
    headline, blank, header, *rest = done.stdout.splitlines()
    rows = rest[: rest.index("")] if "" in rest else rest  # the table ends at a blank line
    assert headline == (
        f"coordinator at {run.url}: ready, 2/2 children serving, queue 0/100 waiting, 0 in flight"
    )
    assert blank == ""
    assert header.split()[:4] == ["PROFILE", "STATE", "PID", "PORTS"]
    assert [row.split()[0] for row in rows] == ["alpha", "beta"]
    for row in rows:
        child = children[row.split()[0]]
        ports = "/".join(str(child["ports"][kind]) for kind in ("api", "stream", "browser"))
        assert row.split()[1:4] == ["ready", str(child["pid"]), ports]


def test_request_in_flight_shows(run: Coordinator) -> None:
    answers: list[httpx.Response] = []
    body = {"model": "mock", "messages": [{"role": "user", "content": "hello"}]}
    sender = threading.Thread(
        target=lambda: answers.append(
            run.post("/v1/chat/completions", json=body, headers={"X-Request-ID": "status-trace-1"})
        )
    )
    sender.start()
    try:
        wait_for(lambda: any(c["state"] == "busy" for c in run.children().values()), 30, "a busy child")
        done = status("--url", run.url)
    finally:
        sender.join(30)
    assert done.returncode == 0, done.stderr
    assert "2/2 children serving, queue 0/100 waiting, 1 in flight" in done.stdout  # busy serves
    busy = [row for row in done.stdout.splitlines() if " busy " in row]
    assert len(busy) == 1 and "status-trace-1" in busy[0]
    assert answers and answers[0].status_code == 200


def test_json_matches_admin_children(run: Coordinator) -> None:
    done = status("--url", run.url, "--json")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    served = run.get("/admin/children").json()

    def stable(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
        moving = {"seconds_in_state", "cooldown_seconds", "next_start_seconds"}
        return [{k: v for k, v in child.items() if k not in moving} for child in children]

    assert printed["object"] == "list"
    assert stable(printed["data"]) == stable(served["data"])
    assert printed["summary"]["status"] == "ready"
    assert printed["summary"]["queue"]["max"] == 100


def test_url_from_the_environment(run: Coordinator) -> None:
    done = status(env={"COORDINATOR_URL": run.url})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"coordinator at {run.url}: ready")


def test_nothing_at_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = status("--url", url)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == (
        f"coordinator: no coordinator answers at {url}: is it running? (connection refused)"
    )
    assert status("--url", url, "--json").returncode == 1


def test_api_key(start_coordinator: StartCoordinator) -> None:
    keyed = start_coordinator(("solo",), env={"COORDINATOR_API_KEY": "k1,k2"}, wait_ready=False)
    wait_for(
        lambda: keyed.get("/admin/children", headers={"Authorization": "Bearer k2"}).status_code == 200,
        20,
        "the coordinator to answer with a key",
    )
    without = status("--url", keyed.url)
    assert without.returncode == 1
    assert "the coordinator wants an API key: pass --api-key or set COORDINATOR_API_KEY" in without.stderr
    wrong = status("--url", keyed.url, "--api-key", "nope")
    assert wrong.returncode == 1 and "refused the API key" in wrong.stderr
    assert "nope" not in wrong.stdout + wrong.stderr
    for env, args in (({"COORDINATOR_API_KEY": "k2,k1"}, []), ({}, ["--api-key", "k1, k2"])):
        done = status("--url", keyed.url, *args, env=env)
        assert done.returncode == 0, done.stderr
        assert "solo" in done.stdout
