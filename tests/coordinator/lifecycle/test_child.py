"""The child state machine and restart backoff."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from coordinator.lifecycle.child import Child, ChildSpec, backoff_delay
from coordinator.lifecycle.ports import PortTriple
from coordinator.lifecycle.profiles import Profile
from coordinator.lifecycle.states import ChildState, InvalidTransition


def make_child(tmp_path: Path) -> Child:
    return Child(ChildSpec(Profile("p", tmp_path / "p.json"), PortTriple(1, 2, 3)), log_dir=tmp_path)


def test_transitions_are_checked_and_reported(tmp_path: Path) -> None:
    seen = []
    child = make_child(tmp_path)
    child.on_change = lambda c, old, new: seen.append((old, new))
    child.state = ChildState.STARTING
    child.transition(ChildState.READY, "healthy")
    child.transition(ChildState.BUSY, "request")
    with pytest.raises(InvalidTransition, match="busy → starting"):
        child.transition(ChildState.STARTING, "nonsense")
    assert seen == [(ChildState.STARTING, ChildState.READY), (ChildState.READY, ChildState.BUSY)]
    assert child.state is ChildState.BUSY


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
