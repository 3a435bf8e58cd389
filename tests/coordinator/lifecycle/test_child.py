"""The child state machine and restart backoff."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from coordinator.lifecycle.child import Child, ChildSpec, backoff_delay
from coordinator.lifecycle.ports import PortTriple
from coordinator.lifecycle.profile_settings import ProfileSettings
from coordinator.lifecycle.profiles import Profile
from coordinator.lifecycle.states import ChildState, CooldownReason, InvalidTransition


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_child(tmp_path: Path, clock: Clock | None = None) -> Child:
    spec = ChildSpec(Profile("p", tmp_path / "p.json"), PortTriple(1, 2, 3))
    return Child(spec, log_dir=tmp_path, clock=clock or Clock())


def test_transitions_are_checked_and_reported(tmp_path: Path) -> None:
    seen = []
    child = make_child(tmp_path)
    child.on_change = lambda c, old, new: seen.append((old, new))
    child.start("test")
    child.ready("healthy")
    child.take("r1")
    with pytest.raises(InvalidTransition, match="busy → starting"):
        child.start("nonsense")
    assert seen == [
        (ChildState.STOPPED, ChildState.STARTING),
        (ChildState.STARTING, ChildState.READY),
        (ChildState.READY, ChildState.BUSY),
    ]
    assert child.state is ChildState.BUSY and child.request_id == "r1"


def test_a_second_start_while_starting_is_refused(tmp_path: Path) -> None:
    child = make_child(tmp_path)
    child.start("first")
    with pytest.raises(InvalidTransition, match="already starting"):
        child.start("second")
    assert child.restarts == 0


def test_each_state_carries_its_data(tmp_path: Path) -> None:
    clock = Clock()
    child = make_child(tmp_path, clock)
    child.start("test")
    assert child.started_at == 100.0 and child.ready_at is None
    clock.now = 101.0
    child.ready("healthy")
    assert child.ready_at == 101.0
    child.cool_down(CooldownReason.QUOTA, 160.0, "quota")
    snapshot = child.snapshot()
    assert (snapshot["state"], snapshot["cooldown_reason"], snapshot["cooldown_seconds"]) == (
        "cooldown",
        "quota",
        59.0,
    )
    child.ready("cooldown over")
    assert child.cooldown_until is None and child.cooldown_reason is None
    child.back_off(4.0, "exited")
    assert child.next_start_at == 105.0 and child.snapshot()["next_start_seconds"] == 4.0
    child.start("backoff over")
    assert child.restarts == 1 and child.next_start_at is None


def test_a_drain_leads_to_a_stop_and_then_where_it_was_told(tmp_path: Path) -> None:
    child = make_child(tmp_path)
    child.start("test")
    child.ready("test")
    child.drain("operator restart", restart=True)
    assert child.restart_requested
    child.stop("drained", then=child.after_stop)
    assert child.state is ChildState.STOPPING and child.after_stop is ChildState.STARTING
    child.redirect(restart=False)
    assert not child.restart_requested
    with pytest.raises(InvalidTransition, match="cannot lead to ready"):
        child.stop("nonsense", then=ChildState.READY)
    child.stopped("exit code 0")
    assert child.state is ChildState.STOPPED


def test_logged_out_without_a_process_is_auth_expired_at_once(tmp_path: Path) -> None:
    child = make_child(tmp_path)
    child.start("test")
    child.log_out("the site asked to sign in", "logged out")
    assert child.state is ChildState.AUTH_EXPIRED
    assert child.last_error == "logged out: the site asked to sign in"


def test_backoff_is_exponential_capped_and_jittered() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, 1.0, 8.0, rng) for n in range(1, 7)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(8.0, 2.0 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert len({round(d, 6) for d in delays}) == len(delays)


def test_child_output_log_rotates(tmp_path: Path) -> None:
    from coordinator.lifecycle.child import RotatingLog

    path = tmp_path / "c.log"
    log = RotatingLog(path, max_bytes=100, backups=2)
    for n in range(10):
        log.write(f"line {n:02d} ".encode() * 5 + b"\n")
    assert path.exists() and (tmp_path / "c.log.1").exists() and (tmp_path / "c.log.2").exists()
    assert not (tmp_path / "c.log.3").exists()
    assert b"line 09" in path.read_bytes()


def test_a_child_is_given_the_models_its_settings_allow(tmp_path: Path) -> None:
    child = make_child(tmp_path)
    child.set_profile(Profile("p", tmp_path / "p.json", ProfileSettings(models=("b", "c"))))
    child.offer(("a", "b", "c"))
    assert (child.offered_models, child.models) == (("a", "b", "c"), ("b", "c"))
    assert child.snapshot()["settings"]["models"] == ["b", "c"]
    # New settings filter what it offers again, at once.
    with capture_logs() as logs:
        child.set_profile(Profile("p", tmp_path / "p.json", ProfileSettings(models=("z",))))
        child.offer(("a", "b", "c"))  # the next health check: said once
    assert child.models == () and child.spec.ports == PortTriple(1, 2, 3)
    assert [entry["event"] for entry in logs] == ["profile_models_not_offered"]
