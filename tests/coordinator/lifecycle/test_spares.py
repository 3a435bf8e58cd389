"""Spares (--max-browsers): which children run, which wait, and who takes whose place.

The real `Supervisor` on fake processes and a fake clock, driven as its loops would be.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from coordinator.lifecycle.health import HealthReport
from coordinator.lifecycle.states import ChildState, CooldownReason
from coordinator.protocol.link import HealthStatus
from tests.coordinator.lifecycle.test_supervisor import Rig, build
from tests.support.lifecycle import settle, until

S = ChildState


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = build(tmp_path, ("a", "b", "c"))
    rig.supervisor.settings = dataclasses.replace(rig.settings, max_browsers=2, spare_after=60.0)
    await rig.supervisor.start_children()
    await rig.ready("a", "b")
    yield rig
    await rig.supervisor.stop()
    assert not rig.launcher.alive(), "a fake process outlived the supervisor's stop"


async def test_at_most_max_browsers_run_and_the_others_wait_as_spares(rig: Rig) -> None:
    assert [rig.state(n) for n in "abc"] == [S.READY, S.READY, S.SPARE]
    assert len(rig.launcher.processes) == 2
    snapshot = rig.child("c").snapshot()
    assert snapshot["state"] == "spare" and "--max-browsers 2" in snapshot["spare_reason"]
    await rig.tick(3600.0)
    assert rig.state("c") is S.SPARE, "a spare waits while every slot is taken"


async def test_a_logged_out_child_is_replaced_by_a_spare(rig: Rig) -> None:
    rig.answer("a", HealthReport(HealthStatus.AUTH_EXPIRED, "sign in"))
    await rig.tick(10.0)
    await rig.supervisor.probe_due()
    await until(lambda: rig.state("a") is S.AUTH_EXPIRED, "a to be logged out")
    await rig.tick()
    assert rig.state("c") is S.STARTING
    await rig.ready("c")


async def test_a_long_cooldown_gives_its_place_to_a_spare_and_waits_as_one_when_over(rig: Rig) -> None:
    a = rig.child("a")
    a.cool_down(CooldownReason.RATE_LIMITED, rig.clock() + 30.0, "short")
    await rig.tick()
    assert rig.state("a") is S.COOLDOWN, "a cooldown shorter than --spare-after keeps its slot"
    a.ready("over")
    a.cool_down(CooldownReason.RATE_LIMITED, rig.clock() + 600.0, "long")
    await rig.tick()
    await until(lambda: rig.state("a") is S.SPARE, "a to be stopped and wait as a spare")
    assert a.spare_reason is not None and "rate_limited cooldown" in a.spare_reason
    await rig.tick()
    assert rig.state("c") is S.STARTING
    await rig.ready("c")
    await rig.tick(601.0)
    assert rig.state("a") is S.SPARE, "a spare whose cooldown is over evicts nobody"
    assert a.spare_reason is not None and "cooldown is over" in a.spare_reason
    rig.answer("b", HealthReport(HealthStatus.AUTH_EXPIRED, "sign in"))
    await rig.supervisor.probe_due()
    await until(lambda: rig.state("b") is S.AUTH_EXPIRED, "b to be logged out")
    await rig.tick()
    assert rig.state("a") is S.STARTING
    await settle()
