"""Accounts, end to end: sessions written back without restarts, quota per model, refusals.

A real coordinator with real mock children: the children write their profile files back
(MOCK_REFRESH_COOKIES gives them a session that changes), answer quota for one model
(MOCK_QUOTA_MODELS) or refuse (MOCK_PERMISSION_DENIED), as a browser engine would.
"""

from __future__ import annotations

import json
import math
import stat
import time
from typing import Any

import pytest

from tests.support.coordinator import Coordinator, StartCoordinator, write_profile
from tests.support.processes import stop_process_group, wait_for

POLL = ["--profiles-poll", "0.3"]
MODELS = {"MOCK_MODELS": "flash,pro"}


def ask(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}]}


def refreshed(run: Coordinator, name: str) -> str | None:
    """The value of the cookie the mock refreshes, as the profile file holds it now."""
    try:
        state = json.loads((run.profiles / f"{name}.json").read_text())
    except ValueError:
        raise AssertionError("the profile file was found half written") from None
    return next((c["value"] for c in state["cookies"] if c["name"] == "mock_refreshed"), None)


def test_a_childs_write_back_does_not_restart_it_but_a_users_new_file_does(
    start_coordinator: StartCoordinator,
) -> None:
    run = start_coordinator(
        ("a",),
        env={"MOCK_REFRESH_COOKIES": "a"},
        args=[*POLL, "--write-back-requests", "1", "--write-back-interval", "0"],
    )
    pid = run.child("a")["pid"]
    path = run.profiles / "a.json"
    seen: set[str] = set()

    def new_value() -> str | None:
        value = refreshed(run, "a")
        return value if value not in seen else None

    for n in range(3):
        assert run.post("/v1/chat/completions", json=ask("mock")).status_code == 200
        seen.add(wait_for(new_value, 30, f"write-back {n + 1}"))
        count = n + 1
        wait_for(lambda: len(run.events("profile_written_back")) == count, 30, "the watcher to see it")  # noqa: B023
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert run.events("profile_changed") == [] and run.child("a")["pid"] == pid, "restarted for its own write"
    assert not any(value in run.output() for value in seen), "a cookie value reached the log"

    write_profile(run.profiles, "a", cookie_value="a-new-login")
    wait_for(lambda: run.events("profile_changed"), 30, "the user's file to be seen")
    wait_for(lambda: (c := run.child("a"))["state"] == "ready" and c["pid"] != pid, 30, "the restart")
    assert json.loads(path.read_text())["cookies"][0]["value"] == "a-new-login", "the child wrote over it"
    assert run.post("/v1/chat/completions", json=ask("mock")).status_code == 200


def test_a_model_out_of_quota_on_one_account_is_served_by_the_others(
    start_coordinator: StartCoordinator,
) -> None:
    run = start_coordinator(("a", "b"), env={**MODELS, "MOCK_QUOTA_MODELS": "a:pro"})
    for _ in range(4):
        response = run.post("/v1/chat/completions", json=ask("pro"))
        assert response.status_code == 200 and response.headers["x-coordinator-child"] == "b"
    a = run.child("a")
    assert a["state"] == "ready" and 590 < a["model_cooldowns"]["pro"] <= 600
    served = {
        run.post("/v1/chat/completions", json=ask("flash")).headers["x-coordinator-child"] for _ in range(4)
    }
    assert served == {"a", "b"}, "a child out of quota for one model serves the others"
    saved = wait_for(lambda: _saved_models(run), 30, "the model quota in cooldowns.json")
    assert set(saved) == {"a"} and set(saved["a"]) == {"pro"}


def test_a_model_out_of_quota_everywhere_is_429_naming_it(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("a", "b"), env={**MODELS, "MOCK_QUOTA_MODELS": "a:pro,b:pro"})
    response = run.post("/v1/chat/completions", json=ask("pro"))
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "quota_exhausted" and "'pro'" in error["message"]
    assert 590 <= int(response.headers["retry-after"]) <= 600
    assert run.post("/v1/chat/completions", json=ask("flash")).status_code == 200


def test_a_model_quota_outlives_a_restart_and_shows_in_status_admin_and_metrics(
    start_coordinator: StartCoordinator,
) -> None:
    first = start_coordinator(("a", "b"), env={**MODELS, "MOCK_QUOTA_MODELS": "a:pro"})
    assert first.post("/v1/chat/completions", json=ask("pro")).headers["x-coordinator-child"] == "b"
    saved = wait_for(lambda: _saved_models(first), 30, "the model quota in cooldowns.json")
    until = saved["a"]["pro"]["until"]
    assert stop_process_group(first.process) == 0
    # Time passes between the runs, so that a's quota ends before the one b meets next.
    wait_for(lambda: time.time() > until - 597, 30, "three seconds of a's quota to pass")

    # Same profiles and state folder; a no longer refuses pro: only the state file keeps it out.
    args = ["--log-dir", str(first.log_dir)]
    run = start_coordinator(
        (), env={**MODELS, "MOCK_QUOTA_MODELS": "b:pro"}, args=args, profiles_dir=first.profiles
    )
    a = run.child("a")
    assert a["state"] == "ready" and 0 < a["model_cooldowns"]["pro"] < 597
    # Every profile cools for pro now: a from the earlier run, b since this request.
    response = run.post("/v1/chat/completions", json=ask("pro"))
    assert response.status_code == 429 and response.json()["error"]["code"] == "quota_exhausted"
    earliest = run.child("a")["model_cooldowns"]["pro"]
    assert int(response.headers["retry-after"]) in (math.ceil(earliest), math.ceil(earliest) + 1)
    assert run.child("b")["model_cooldowns"]["pro"] > earliest + 2
    assert run.child("a")["served"] == 0, "a was offered pro during its quota"
    served = {
        run.post("/v1/chat/completions", json=ask("flash")).headers["x-coordinator-child"] for _ in range(4)
    }
    assert served == {"a", "b"}, "out of quota for pro, both still serve flash"

    shown = run.status()
    assert shown.returncode == 0, shown.stderr
    assert "a: out of quota for pro 9m" in shown.stdout and "b: out of quota for pro 9m" in shown.stdout
    metrics = run.get("/metrics").text
    for name in "ab":
        assert f'coordinator_child_model_cooldown_seconds{{model="pro",profile="{name}"}}' in metrics


@pytest.mark.parametrize("refusal", ["quota", "rate_limit"])
def test_a_refusal_after_the_first_byte_is_noted_at_once(
    start_coordinator: StartCoordinator, refusal: str
) -> None:
    knob = {"MOCK_QUOTA_MODELS": "a:pro"} if refusal == "quota" else {"MOCK_RATE_LIMIT": "a"}
    # Health checks far apart: the cooldown is noted from the stream, not from a later /health.
    run = start_coordinator(
        ("a",), env={**MODELS, **knob, "MOCK_LATE_REFUSAL": "a"}, args=["--health-interval", "60"]
    )
    body = run.post("/v1/chat/completions", json={**ask("pro"), "stream": True}).text
    assert "echo:" in body and "[DONE]" not in body
    a = run.child("a")
    response = run.post("/v1/chat/completions", json=ask("pro"))
    assert response.status_code == 429 and response.json()["error"]["code"] == "quota_exhausted"
    assert 590 <= int(response.headers["retry-after"]) <= 600
    if refusal == "quota":
        assert a["state"] == "ready" and 590 < a["model_cooldowns"]["pro"] <= 600
        assert run.post("/v1/chat/completions", json=ask("flash")).status_code == 200
    else:
        assert (a["state"], a["cooldown_reason"]) == ("cooldown", "rate_limited")
        assert a["model_cooldowns"] == {} and 590 < a["cooldown_seconds"] <= 600
        assert "a: cooldown (rate_limited) 9m" in run.status().stdout


def test_a_refused_account_is_cooled_and_two_refusals_end_the_request(
    start_coordinator: StartCoordinator,
) -> None:
    run = start_coordinator(("a", "b", "c"), env={"MOCK_PERMISSION_DENIED": "a,b"})
    response = run.post("/v1/chat/completions", json=ask("mock"))
    # Round-robin starts at a: refused there and at b, the request ends; c is not offered it.
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    children = run.children()
    assert [children[n]["cooldown_reason"] for n in "ab"] == ["permission_denied"] * 2
    assert children["c"]["state"] == "ready" and children["c"]["served"] == 0
    response = run.post("/v1/chat/completions", json=ask("mock"))
    assert response.status_code == 200 and response.headers["x-coordinator-child"] == "c"


def _saved_models(run: Coordinator) -> dict[str, Any] | None:
    path = run.log_dir / "cooldowns.json"
    models: dict[str, Any] | None = json.loads(path.read_text()).get("models") if path.exists() else None
    return models
