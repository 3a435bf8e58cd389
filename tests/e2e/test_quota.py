"""The quota view with real processes: requests spread evenly over the accounts, what
remains falling, a quota hit counted with its time, the counts kept across a restart
(from the ledger), and the view in /admin/usage/quota, `coordinator usage --quota`,
`coordinator status` and the metrics."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import time
from collections import Counter
from typing import Any

from coordinator.ledger.quota import quota_day
from tests.support.coordinator import COORDINATOR, Coordinator, StartCoordinator
from tests.support.processes import stop_process_group, wait_for

PROFILES = ("a", "b", "c")
ENV = {"MOCK_MODELS": "pro,flash", "MOCK_USAGE": "7,5,2"}
LIMITS = ["--daily-limit", "pro=10"]
ROW_FIELDS = {
    "profile", "model", "requests", "prompt_tokens", "completion_tokens", "reasoning_tokens", "quota_hits",
    "last_quota_hit", "daily_limit", "remaining",
}  # fmt: skip


def ask(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}]}


def served_by(run: Coordinator, model: str) -> str:
    response = run.post("/v1/chat/completions", json=ask(model))
    assert response.status_code == 200, response.text
    return response.headers["x-coordinator-child"]


def view(run: Coordinator) -> dict[str, Any]:
    response = run.get("/admin/usage/quota")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def rows(run: Coordinator) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["profile"], row["model"]): row for row in view(run)["rows"]}


def test_requests_spread_evenly_a_hit_is_counted_and_the_counts_outlive_a_restart(
    start_coordinator: StartCoordinator,
) -> None:
    first = start_coordinator(PROFILES, env={**ENV, "MOCK_QUOTA_MODELS": "c:flash"}, args=LIMITS)
    body = view(first)
    start, end = quota_day(time.time())
    assert body["quota_day"]["timezone"] == "America/Los_Angeles"
    assert dt.datetime.fromisoformat(body["quota_day"]["start"]).timestamp() == start
    assert dt.datetime.fromisoformat(body["quota_day"]["end"]).timestamp() == end
    # Every model each child offers is listed before any request, at zero.
    before = rows(first)
    assert set(before) == {(p, m) for p in PROFILES for m in ("pro", "flash")}
    assert all(set(row) == ROW_FIELDS for row in before.values())
    assert before["a", "pro"] | {"profile": None} == {
        "profile": None, "model": "pro", "requests": 0, "prompt_tokens": 0, "completion_tokens": 0,
        "reasoning_tokens": 0, "quota_hits": 0, "last_quota_hit": None, "daily_limit": 10, "remaining": 10,
    }  # fmt: skip
    assert before["a", "flash"]["daily_limit"] is None and before["a", "flash"]["remaining"] is None

    # Sequential requests: the accounts' counts never differ by more than one.
    seen: Counter[str] = Counter()
    for _ in range(10):
        seen[served_by(first, "pro")] += 1
        assert max(seen.values()) - min(seen[p] for p in PROFILES) <= 1, seen
    wait_for(
        lambda: all(rows(first)[p, "pro"]["prompt_tokens"] == 7 * seen[p] for p in PROFILES),
        30,
        "the tokens of the ten requests counted",
    )
    after = rows(first)
    for profile in PROFILES:
        row = after[profile, "pro"]
        assert row["requests"] == seen[profile]
        assert row["remaining"] == 10 - seen[profile]
        assert (row["completion_tokens"], row["reasoning_tokens"]) == (5 * seen[profile], 2 * seen[profile])

    # c refuses flash: c has used least flash (none), so it is tried within three requests;
    # each is served by a or b, and c's hit is counted with its time.
    asked_at = time.time()
    for _ in range(3):
        assert served_by(first, "flash") in ("a", "b")
        if rows(first)["c", "flash"]["quota_hits"]:
            break
    hit = rows(first)["c", "flash"]
    assert hit["quota_hits"] == 1 and hit["requests"] == 0
    hit_at = dt.datetime.fromisoformat(hit["last_quota_hit"].replace("Z", "+00:00")).timestamp()
    assert asked_at - 1 <= hit_at <= time.time() + 1

    # The same view in the metrics, `coordinator status` and `coordinator usage --quota`.
    metrics = first.get("/metrics").text
    heavy = max(PROFILES, key=lambda p: seen[p])
    assert f'coordinator_quota_requests{{model="pro",profile="{heavy}"}} {float(seen[heavy])}' in metrics
    assert (
        f'coordinator_quota_remaining{{model="pro",profile="{heavy}"}} {float(10 - seen[heavy])}' in metrics
    )
    assert 'coordinator_quota_hits{model="flash",profile="c"} 1.0' in metrics
    assert 'coordinator_quota_remaining{model="flash"' not in metrics, "no limit known for flash"
    shown = first.status()
    assert shown.returncode == 0, shown.stderr
    line = rf"^{heavy}: quota today (flash 1 used, )?pro {10 - seen[heavy]}/10 left$"
    assert re.search(line, shown.stdout, re.M), shown.stdout
    assert re.search(r"^c: quota today .*; 1 quota hit, last ", shown.stdout, re.M), shown.stdout
    usage = subprocess.run(
        [*COORDINATOR, "usage", "--url", first.url, "--quota"], capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 0, usage.stderr
    assert "America/Los_Angeles" in usage.stdout
    table = {tuple(line.split()[:5]) for line in usage.stdout.splitlines()}
    assert (heavy, "pro", str(seen[heavy]), "10", str(10 - seen[heavy])) in table, usage.stdout
    as_json = subprocess.run(
        [*COORDINATOR, "usage", "--url", first.url, "--quota", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(as_json.stdout)["rows"] == view(first)["rows"]

    # A restart on the same data folder counts on from the ledger.
    counted = rows(first)
    assert stop_process_group(first.process) == 0
    data = first.log_dir.parent / "data"
    run = start_coordinator((), env=ENV, args=[*LIMITS, "--data-dir", str(data)], profiles_dir=first.profiles)
    assert rows(run) == counted
    # The account that served most is passed over until the others catch up.
    light = [p for p in PROFILES if seen[p] < seen[heavy]]
    assert sorted(served_by(run, "pro") for _ in light) == sorted(light)
    wait_for(
        lambda: {rows(run)[p, "pro"]["requests"] for p in PROFILES} == {seen[heavy]},
        30,
        "every account at the same count",
    )
    assert rows(run)[heavy, "pro"]["remaining"] == 10 - seen[heavy]


def test_the_quota_view_needs_the_admin_key(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(
        ("a",), env=ENV, args=["--api-key", "client-key", "--admin-key", "admin-key"], api_key="admin-key"
    )
    assert view(run)["rows"]
    refused = run.get("/admin/usage/quota", headers={"Authorization": "Bearer client-key"})
    assert refused.status_code == 403 and refused.json()["error"]["message"]
    assert run.get("/admin/usage/quota", headers={"Authorization": ""}).status_code == 401
