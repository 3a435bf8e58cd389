"""The life of children and of the coordinator: crashes, restarts, fatal, shutdown, startup errors."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

from tests.support.coordinator import COORDINATOR, Coordinator, StartCoordinator, write_profile
from tests.support.processes import alive, free_port_bases, wait_for

ASK = {"model": "mock", "messages": [{"role": "user", "content": "are you there"}]}


def test_crash_backoff_and_back_to_ready(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("a", "b"))
    before = run.child("a")
    os.kill(before["pid"], signal.SIGKILL)
    # The exit is seen at once (the process is awaited), not at the next health check.
    crashed = wait_for(
        lambda: run.child("a") if run.child("a")["state"] in ("backoff", "starting") else None,
        2,
        "the crash to be noticed",
    )
    assert "signal 9" in (crashed["last_error"] or "")
    after = run.wait_state("a", "ready")
    assert after["pid"] != before["pid"]
    assert after["restarts"] == 1
    states = [(e["old"], e["new"]) for e in run.events("child_state") if e["child"] == "a"]
    assert ("ready", "backoff") in states and ("backoff", "starting") in states
    assert run.post("/v1/chat/completions", json=ASK).status_code == 200


def test_repeated_failed_starts_end_in_fatal(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(
        ("broken", "fine"),
        env={"MOCK_FAIL_START": "broken"},
        args=["--max-start-failures", "3"],
        wait_ready=False,
    )
    wait_for(lambda: _state(run, "broken") == "fatal", 20, "the failing child to be fatal")
    fatal = run.child("broken")
    assert fatal["restarts"] == 2
    assert fatal["pid"] is None
    assert "3 times in a row" in json.dumps(run.events("child_state"))
    # A fatal child is not restarted in a loop; the others serve.
    run.wait_state("fine", "ready")
    assert run.get("/ready").status_code == 200
    assert [e["new"] for e in run.events("child_state") if e["child"] == "broken"][-1] == "fatal"
    # An operator restart tries again (and, the cause unchanged, fails again).
    assert run.post("/admin/children/broken/restart").status_code == 202
    wait_for(lambda: run.child("broken")["restarts"] > 2, 30, "the operator restart")


def _state(run: Coordinator, child_id: str) -> str | None:
    if run.process.poll() is not None:
        raise AssertionError(f"coordinator exited:\n{run.output()[-3000:]}")
    try:
        state: str = run.child(child_id)["state"]
    except httpx.HTTPError:
        return None
    return state


def test_configuration_error_is_fatal_at_once(start_coordinator: StartCoordinator) -> None:
    # A child that says its configuration is wrong (exit 78) is not retried.
    run = start_coordinator(("a",), args=["--engine", "camoufox"], wait_ready=False)
    wait_for(lambda: _state(run, "a") == "fatal", 30, "the child to be fatal")
    child = run.child("a")
    assert child["restarts"] == 0
    assert "configuration error" in json.dumps(run.events("child_state"))


def test_sigterm_finishes_in_flight_fails_queued_and_leaves_no_process(
    start_coordinator: StartCoordinator,
) -> None:
    # 4 s before the first token: time to queue another on a loaded machine, and within the
    # 5 s grace after SIGTERM.
    run = start_coordinator(("solo",), env={"MOCK_FIRST_TOKEN_MS": "4000"})
    children = [c["pid"] for c in run.children().values()]
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(run.post, "/v1/chat/completions", json=ASK)
        wait_for(lambda: run.child("solo")["state"] == "busy", 30, "the request to start")
        queued = pool.submit(run.post, "/v1/chat/completions", json=ASK)
        wait_for(lambda: run.get("/ready").json()["queue"]["waiting"] == 1, 30, "the second request to queue")
        descendants = [p.pid for p in run.descendants()]
        run.process.send_signal(signal.SIGTERM)
        refused = queued.result(timeout=5)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "shutting_down"
        assert "retry-after" in refused.headers
        ready = run.get("/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "draining"
        new = run.post("/v1/chat/completions", json=ASK)
        assert new.status_code == 503
        finished = running.result(timeout=10)
    assert finished.status_code == 200
    assert finished.json()["choices"][0]["message"]["content"] == "echo: are you there"
    assert run.process.wait(10) == 0
    assert not alive(children + descendants)


def test_drain_delay_keeps_the_port_open_answering_503(start_coordinator: StartCoordinator) -> None:
    # Nothing in flight: without --drain-delay the port would close at once after SIGTERM.
    # 5 s of drain, 4 s of it checked: a request sent near the end of the window may take a
    # second to arrive on a loaded machine.
    run = start_coordinator(("solo",), args=["--drain-delay", "5"])
    run.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    wait_for(lambda: run.get("/ready").status_code == 503, 30, "/ready to say draining")
    while time.monotonic() - signalled < 4.0:
        assert run.process.poll() is None, "the coordinator left before its drain delay"
        refused = run.post("/v1/chat/completions", json=ASK)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
        assert run.get("/ready").json()["status"] == "draining"
    assert run.process.wait(10) == 0


def test_sigkill_of_the_coordinator_leaves_no_child(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("a", "b", "c"))
    children = [p.pid for p in run.descendants()]
    assert len(children) == 3
    run.process.send_signal(signal.SIGKILL)
    run.process.wait(5)
    wait_for(lambda: not alive(children), 30, "every child to die with the coordinator")


def _run_command(
    tmp_path: Path, profiles: Path, *extra: str, bases: tuple[int, ...] | None = None
) -> subprocess.CompletedProcess[str]:
    """`coordinator run` in the foreground, for runs that are expected to refuse to start."""
    api, stream, browser = bases or free_port_bases(4, ranges=3)
    argv = [
        *COORDINATOR, "run", "--profiles", str(profiles), "--host", "127.0.0.1", "--port", str(api - 1),
        "--base-api-port", str(api), "--base-stream-port", str(stream),
        "--base-browser-port", str(browser), "--engine", "mock", "--log-dir", str(tmp_path / "logs"), *extra,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, start_new_session=True)


def test_a_taken_port_is_named_with_its_holder(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    write_profile(profiles, "a")
    write_profile(profiles, "b")
    bases = free_port_bases(3, ranges=3)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", bases[0] + 1))
        squatter.listen()
        result = _run_command(tmp_path, profiles, bases=bases)
    assert result.returncode != 0
    assert f"port {bases[0] + 1}" in result.stderr
    assert "profile b" in result.stderr
    assert f"pid {os.getpid()}" in result.stderr  # this test process holds it
    assert "Traceback" not in result.stderr


def test_overlapping_port_ranges_are_refused(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    for name in ("a", "b", "c"):
        write_profile(profiles, name)
    result = _run_command(tmp_path, profiles, "--base-api-port", "23000", "--base-stream-port", "23002")
    assert result.returncode != 0
    assert "overlap at port 23002" in result.stderr


def test_bad_profile_is_reported_and_the_others_start(
    start_coordinator: StartCoordinator, tmp_path: Path
) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "garbled.json").write_text('{"cookies": [{"name": "sid", "value": "TOPSECRET-1"')
    (folder / "wrong.json").write_text('{"cookies": "TOPSECRET-2"}')
    write_profile(folder, "good", cookie_value="TOPSECRET-3")
    run = start_coordinator((), profiles_dir=folder)
    assert set(run.children()) == {"good"}
    rejected = {Path(e["path"]).name: e["reason"] for e in run.events("profile_rejected")}
    assert set(rejected) == {"garbled.json", "wrong.json"}
    assert "not valid JSON" in rejected["garbled.json"]
    assert "'cookies' must be a list" in rejected["wrong.json"]
    assert run.post("/v1/chat/completions", json=ASK).status_code == 200
    # No cookie value ever reaches a log: not the coordinator's, not a child's.
    logs = run.output() + "".join(p.read_text() for p in run.log_dir.glob("*.log"))
    assert "TOPSECRET" not in logs


def test_no_valid_profile_exits_with_advice(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "bad.json").write_text("[]")
    result = _run_command(tmp_path, profiles)
    assert result.returncode == 2
    assert "no valid profile" in result.stderr
    assert "--demo" in result.stderr
    missing = _run_command(tmp_path, tmp_path / "nowhere")
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr


def test_request_log_lines_carry_what_operators_need(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("a",))
    response = run.post("/v1/chat/completions", json=ASK, headers={"X-Request-ID": "trace-7"})
    assert response.status_code == 200
    line = wait_for(
        lambda: [e for e in run.events("request") if e["request_id"] == "trace-7"], 30, "the log"
    )[0]
    assert line["child"] == "a" and line["profile"] == "a"
    assert line["status"] == 200
    assert line["duration_ms"] > 0
    assert "are you there" not in run.output()  # prompts are never logged
    child_log = (run.log_dir / "a.log").read_text()
    assert "trace-7" in child_log and "are you there" not in child_log


def test_drain_stops_a_child_and_restart_brings_it_back(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("a", "b"))
    pid = run.child("a")["pid"]
    assert run.post("/admin/children/a/drain").status_code == 202
    run.wait_state("a", "stopped")
    assert not alive([pid])
    for _ in range(3):
        assert run.post("/v1/chat/completions", json=ASK).headers["x-coordinator-child"] == "b"
    assert run.post("/admin/children/a/restart").status_code == 202
    run.wait_state("a", "ready")


def test_ctrl_c_shuts_down_cleanly(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("a",))
    children = [p.pid for p in run.descendants()]
    run.process.send_signal(signal.SIGINT)
    assert run.process.wait(10) == 0
    assert not alive(children)


def test_settings_come_from_the_environment_and_flags_win(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(
        ("a",),
        env={"COORDINATOR_MAX_QUEUE": "7", "COORDINATOR_QUEUE_TIMEOUT": "9"},
        args=["--queue-timeout", "3"],
    )
    assert run.get("/ready").json()["queue"]["max"] == 7
    started = run.events("starting")
    assert started and started[0]["profiles"] == ["a"]
    # The environment named the queue length; the flag overrode the environment's timeout.
    cmdline = " ".join(psutil.Process(run.process.pid).cmdline())
    assert "--queue-timeout 3" in cmdline
    line = subprocess.run(
        [*COORDINATOR, "run", "--help"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}
    ).stdout
    assert "COORDINATOR_QUEUE_TIMEOUT" in line and "COORDINATOR_BASE_API_PORT" in line


def test_children_start_together_each_in_its_own_group_and_folder(
    start_coordinator: StartCoordinator,
) -> None:
    run = start_coordinator(("a", "b", "c"), env={"MOCK_STARTUP_MS": "600"}, wait_ready=False)
    run.wait_all_ready()
    events = [(e["child"], e["new"]) for e in run.events("child_state")]
    first_ready = min(i for i, (_, new) in enumerate(events) if new == "ready")
    # All three were spawned before any became ready: started at once, not one after another.
    assert {child for child, new in events[:first_ready] if new == "starting"} == {"a", "b", "c"}
    for child in run.children().values():
        process = psutil.Process(child["pid"])
        assert os.getpgid(child["pid"]) == child["pid"]  # the leader of its own process group
        assert process.cwd() == str(run.log_dir / "work" / child["id"])
        assert (run.log_dir / f"{child['id']}.log").stat().st_size > 0


def test_a_hung_idle_child_is_found_by_health_polling_and_restarted(
    start_coordinator: StartCoordinator,
) -> None:
    run = start_coordinator(("a", "b"))
    hung = run.child("a")
    os.kill(hung["pid"], signal.SIGSTOP)
    try:
        crashed = wait_for(
            lambda: run.child("a") if run.child("a")["restarts"] >= 1 else None,
            30,
            "the hung child's restart",
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(hung["pid"], signal.SIGCONT)
    assert "health checks in a row" in (crashed["last_error"] or "")
    run.wait_state("a", "ready")
    assert not alive([hung["pid"]])


def test_the_child_token_is_never_logged(start_coordinator: StartCoordinator) -> None:
    run = start_coordinator(("a",))
    environ = psutil.Process(run.child("a")["pid"]).environ()
    token = environ["CHILD_TOKEN"]
    assert len(token) >= 32
    assert run.post("/v1/chat/completions", json=ASK).status_code == 200
    assert run.post("/v1/cancel/nothing").status_code == 404
    logs = run.output() + (run.log_dir / "a.log").read_text()
    assert token not in logs


def test_restarts_in_a_row_each_start_one_process_that_stays(start_coordinator: StartCoordinator) -> None:
    """A restart stops the old process and starts one new one, which nothing stops again:
    a stop decided for the old process once hit the new one (signal 15, then a backoff)."""
    run = start_coordinator(("a",))
    for n in range(1, 9):
        old = run.child("a")["pid"]
        assert run.post("/admin/children/a/restart").status_code == 202
        new = wait_for(
            lambda: (c := run.child("a"))["state"] == "ready" and c["pid"] != old and c,  # noqa: B023
            30,
            f"restart {n} to bring a new process",
        )
        assert new["restarts"] == n
    assert run.events("child_state")
    assert not [e for e in run.events("child_state") if e["new"] == "backoff"]
