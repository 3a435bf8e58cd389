"""Live profile changes and cooldowns that survive restarts, with a real coordinator and mock children."""

from __future__ import annotations

import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from coordinator.lifecycle.cooldowns import Cooldowns, FileStamp
from tests.support.coordinator import Coordinator, StartCoordinator, write_profile
from tests.support.processes import alive, wait_for

ASK = {"model": "mock", "messages": [{"role": "user", "content": "are you there"}]}
POLL = ["--profiles-poll", "0.3"]


def wait_child(run: Coordinator, child_id: str, state: str, timeout: float = 15) -> dict[str, Any]:
    """Like `wait_state`, for a child that may not be listed yet."""

    def reached() -> dict[str, Any] | None:
        child = run.children().get(child_id)
        return child if child is not None and child["state"] == state else None

    found: dict[str, Any] = wait_for(reached, timeout, f"child {child_id} to be listed as {state}")
    return found


def drained_for(run: Coordinator, child_id: str, reason: str) -> bool:
    """Whether the log shows `child_id` going busy → draining because of `reason`.

    Read from the log rather than /admin/children: the state may be gone by the next poll.
    """
    return any(
        e["child"] == child_id and (e["old"], e["new"]) == ("busy", "draining") and reason in e["reason"]
        for e in run.events("child_state")
    )


def gone(run: Coordinator, child_id: str) -> bool:
    return child_id not in run.children()


def busy_child(run: Coordinator) -> str | None:
    return next((c["id"] for c in run.children().values() if c["state"] == "busy"), None)


def saved_cooldowns(log_dir: Path) -> dict[str, dict[str, object]]:
    path = log_dir / "cooldowns.json"
    if not path.exists():
        return {}
    profiles: dict[str, dict[str, object]] = json.loads(path.read_text())["profiles"]
    return profiles


def test_a_new_file_starts_a_child_on_the_next_triple_and_it_serves(
    start_coordinator: StartCoordinator,
) -> None:
    run = start_coordinator(("a",), args=POLL)
    # An invalid new file is reported with its path and reason, and left out.
    (run.profiles / "b.json").write_text('{"cookies": "TOPSECRET"}')
    wait_for(lambda: run.events("profile_rejected"), 30, "the invalid file to be reported")
    rejected = run.events("profile_rejected")[0]
    assert rejected["path"] == str(run.profiles / "b.json")
    assert "'cookies' must be a list" in rejected["reason"]
    assert set(run.children()) == {"a"}
    # Fixed, it is picked up like any new file.
    write_profile(run.profiles, "b")
    added = wait_child(run, "b", "ready")
    first = run.child("a")["ports"]
    assert added["ports"] == {key: port + 1 for key, port in first.items()}
    assert [e["child"] for e in run.events("profile_added")] == ["b"]
    # It takes requests: with the other drained, every one.
    assert run.post("/admin/children/a/drain").status_code == 202
    run.wait_state("a", "stopped")
    for _ in range(3):
        response = run.post("/v1/chat/completions", json=ASK)
        assert response.status_code == 200
        assert response.headers["x-coordinator-child"] == "b"
    assert "TOPSECRET" not in run.output()


def test_a_removed_file_drains_its_child_and_loses_no_request(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("a", "b"), env={"MOCK_FIRST_TOKEN_MS": "2500"}, args=POLL)
    ports = {child["id"]: child["ports"] for child in run.children().values()}
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(run.post, "/v1/chat/completions", json=ASK)
        victim = wait_for(lambda: busy_child(run), 30, "the request to start")
        pid = run.child(victim)["pid"]
        (run.profiles / f"{victim}.json").unlink()
        wait_for(lambda: drained_for(run, victim, "profile file removed"), 30, "the drain")
        assert not running.done()  # drained while its request was in flight
        finished = running.result(timeout=15)
    assert finished.status_code == 200
    assert finished.headers["x-coordinator-child"] == victim
    assert finished.json()["choices"][0]["message"]["content"] == "echo: are you there"
    wait_for(lambda: gone(run, victim), 30, f"child {victim} to leave /admin/children")
    wait_for(lambda: not alive([pid]), 30, f"the process of {victim} to end")
    other = ({"a", "b"} - {victim}).pop()
    response = run.post("/v1/chat/completions", json=ASK)
    assert response.status_code == 200 and response.headers["x-coordinator-child"] == other
    assert [e["child"] for e in run.events("child_removed")] == [victim]
    # Its triple is free again: the next new profile gets it.
    write_profile(run.profiles, "c")
    assert wait_child(run, "c", "ready")["ports"] == ports[victim]


def test_a_changed_file_restarts_its_child_after_its_request(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("a",), env={"MOCK_FIRST_TOKEN_MS": "2500"}, args=POLL)
    before = run.child("a")
    # Rewriting the same content is no change.
    write_profile(run.profiles, "a")
    time.sleep(1)
    assert run.child("a")["pid"] == before["pid"]
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(run.post, "/v1/chat/completions", json=ASK)
        wait_for(lambda: busy_child(run), 30, "the request to start")
        write_profile(run.profiles, "a", cookie_value="a-new-session")
        wait_for(lambda: drained_for(run, "a", "profile file changed"), 30, "the drain")
        assert not running.done()
        assert run.child("a")["pid"] == before["pid"]  # not restarted before its request is done
        finished = running.result(timeout=15)
    assert finished.status_code == 200
    after = wait_for(
        lambda: (c := run.child("a"))["state"] == "ready" and c["pid"] != before["pid"] and c,
        30,
        "the child to come back with a new process",
    )
    assert after["restarts"] == before["restarts"] + 1
    assert not alive([before["pid"]])
    assert len(run.events("profile_changed")) == 1
    assert run.post("/v1/chat/completions", json=ASK).status_code == 200


def test_sighup_rescans_at_once(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("a",), args=["--profiles-poll", "60"])
    write_profile(run.profiles, "b")
    time.sleep(1)
    assert set(run.children()) == {"a"}  # no poll for a minute
    run.process.send_signal(signal.SIGHUP)
    wait_child(run, "b", "ready", timeout=10)
    assert run.events("rescan_requested")
    assert run.process.poll() is None  # SIGHUP does not stop the coordinator
    assert run.get("/ready").status_code == 200


def test_a_quota_cooldown_outlives_a_coordinator_restart(start_coordinator: StartCoordinator) -> None:
    first = start_coordinator(("ok", "q"), env={"MOCK_QUOTA": "q"})
    for _ in range(4):
        # A quota answer is retried on the other child: the client never sees it.
        assert first.post("/v1/chat/completions", json=ASK).status_code == 200
        if first.child("q")["state"] == "cooldown":
            break
    cooling = first.wait_state("q", "cooldown", timeout=30)
    assert cooling["cooldown_reason"] == "quota" and cooling["cooldown_seconds"] > 500
    saved = saved_cooldowns(first.log_dir)
    assert set(saved) == {"q"} and saved["q"]["reason"] == "quota"
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(15) == 0

    # A new coordinator on the same log dir (and without the quota fault) keeps q out.
    second = start_coordinator(
        (), profiles_dir=first.profiles, args=["--log-dir", str(first.log_dir)], wait_ready=False
    )
    second.wait_state("ok", "ready")
    restored = second.wait_state("q", "cooldown")
    assert restored["pid"] is not None  # started, but kept out of scheduling
    assert restored["cooldown_reason"] == "quota"
    assert 0 < restored["cooldown_seconds"] <= cooling["cooldown_seconds"]
    for _ in range(4):
        response = second.post("/v1/chat/completions", json=ASK)
        assert response.status_code == 200 and response.headers["x-coordinator-child"] == "ok"
    assert second.child("q")["served"] == 0
    assert second.events("cooldown_restored")

    # An operator restart clears it, in memory and in the file, and q serves again.
    assert second.post("/admin/children/q/restart").status_code == 202
    wait_for(lambda: "q" not in saved_cooldowns(first.log_dir), 30, "the entry to leave the file")
    back = wait_for(
        lambda: (c := second.child("q"))["state"] == "ready" and c["pid"] != restored["pid"] and c,
        30,
        "q to serve again",
    )
    assert back["cooldown_seconds"] is None
    served_by = {
        second.post("/v1/chat/completions", json=ASK).headers["x-coordinator-child"] for _ in range(4)
    }
    assert "q" in served_by


def test_a_logged_out_profile_stays_out_until_its_file_changes(
    start_coordinator: StartCoordinator, tmp_path: Path
) -> None:
    folder, log_dir = tmp_path / "profiles", tmp_path / "logs"
    folder.mkdir()
    write_profile(folder, "ok")
    out = write_profile(folder, "out")
    stamp = FileStamp.of(out)
    assert stamp is not None
    Cooldowns(log_dir / "cooldowns.json").record_auth_expired("out", stamp)
    run = start_coordinator(
        (), profiles_dir=folder, args=[*POLL, "--log-dir", str(log_dir)], wait_ready=False
    )
    run.wait_state("ok", "ready")
    kept_out = run.wait_state("out", "auth_expired")
    assert kept_out["pid"] is None  # never started: the file is the one that was logged out
    assert "log in again" in json.dumps(run.events("child_state"))
    time.sleep(1)
    assert run.child("out")["state"] == "auth_expired"
    # A new file (a new login) brings it back and forgets the record.
    write_profile(folder, "out", cookie_value="fresh-login")
    run.wait_state("out", "ready")
    assert "out" not in saved_cooldowns(log_dir)
