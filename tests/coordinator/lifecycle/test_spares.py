"""Spares (--max-browsers): which children run, which wait, and who takes whose place.

The real `Supervisor` on fake processes and a fake clock, driven as its loops would be.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from coordinator.lifecycle.health import HealthReport
from coordinator.lifecycle.shards import owner
from coordinator.lifecycle.states import ChildState, CooldownReason
from coordinator.protocol.link import HealthStatus
from tests.coordinator.lifecycle.test_supervisor import Rig, build
from tests.support.lifecycle import profile_file, settle, until

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


async def test_spares_and_new_files_stay_within_the_shard(tmp_path: Path) -> None:
    names = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")
    mine = tuple(name for name in names[:6] if owner(name, 2) == 0)
    assert len(mine) == 3
    folder = tmp_path / "profiles"
    folder.mkdir()
    for name in names[:6]:
        profile_file(folder, name)  # the other shard's files are in the folder too
    rig = build(tmp_path, mine, shard_index=0, shard_count=2, max_browsers=2)
    try:
        await rig.supervisor.start_children()
        assert rig.supervisor.reconciler.skipped == 3
        running = [name for name in mine if rig.state(name) is not S.SPARE]
        (spare,) = [name for name in mine if rig.state(name) is S.SPARE]
        await rig.ready(*running)
        # Two files arrive: the one of this shard is enlisted (a spare: both slots are
        # taken), the other shard's is counted and left alone.
        ours = next(name for name in names[6:] if owner(name, 2) == 0)
        theirs = next(name for name in names[6:] if owner(name, 2) == 1)
        profile_file(folder, ours)
        profile_file(folder, theirs)
        await rig.tick(2.0)
        await rig.tick()
        assert set(rig.roster.ids()) == {*mine, ours}
        assert rig.state(ours) is S.SPARE and rig.supervisor.reconciler.skipped == 4
        # A child logged out: a spare of this shard takes its place.
        rig.answer(running[0], HealthReport(HealthStatus.AUTH_EXPIRED, "sign in"))
        await rig.tick(10.0)
        await rig.supervisor.probe_due()
        await until(lambda: rig.state(running[0]) is S.AUTH_EXPIRED, "the child to be logged out")
        await rig.tick()
        assert S.STARTING in {rig.state(spare), rig.state(ours)}
        assert theirs not in rig.roster.ids()
    finally:
        await rig.supervisor.stop()
