"""Scheduling decisions of the pool, on Child objects without processes (fast, no I/O but logs)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from coordinator.ledger.quota import DailyLimits, QuotaTally
from coordinator.lifecycle.child import Child, ChildSpec
from coordinator.lifecycle.ports import PortTriple
from coordinator.lifecycle.profiles import Profile
from coordinator.lifecycle.roster import Roster
from coordinator.lifecycle.states import ChildState, CooldownReason
from coordinator.serving.lanes import Lane
from coordinator.serving.pool import (
    AllCoolingDown,
    NoChildAvailable,
    Outcome,
    Pool,
    PoolClosed,
    QueueFull,
    QueueTimeout,
    RequestCancelled,
    UnknownModel,
)
from tests.support.lifecycle import enlist_ready


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_pool(tmp_path: Path, count: int, clock: Clock | None = None, **options: float) -> Pool:
    clock = clock or Clock()
    settings = {"max_queue": 2, "queue_timeout": 5.0, "eject_after": 2, "eject_cooldown": 10.0,
                "eject_cooldown_max": 25.0, **options}  # fmt: skip
    roster = Roster(tmp_path, clock=clock)
    pool = Pool(roster, clock=clock, **settings)  # type: ignore[arg-type]
    enlist_ready(roster, tmp_path, count)
    return pool


async def test_round_robin_over_idle_children(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, 3)
    picked = []
    for n in range(6):
        child = await pool.acquire(f"r{n}", "mock")
        picked.append(child.id)
        pool.release(child, Outcome.SERVED)
    assert picked == ["c0", "c1", "c2", "c0", "c1", "c2"]


async def test_busy_children_are_skipped_and_waiters_served_in_order(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, 1, max_queue=5)
    holder = await pool.acquire("first", None)
    assert holder.state is ChildState.BUSY
    waiting = [asyncio.create_task(pool.acquire(f"w{n}", None)) for n in range(3)]
    await asyncio.sleep(0)
    assert [w.request_id for w in pool.waiters] == ["w0", "w1", "w2"]
    order = []
    for task in waiting:
        pool.release(holder, Outcome.SERVED)
        holder = await task
        order.append(holder.request_id)
    assert order == ["w0", "w1", "w2"]


async def test_full_queue_and_timeout(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, 1, max_queue=1, queue_timeout=0.05)
    await pool.acquire("busy", None)
    waiter = asyncio.create_task(pool.acquire("queued", None))
    await asyncio.sleep(0)
    with pytest.raises(QueueFull) as full:
        await pool.acquire("overflow", None)
    assert full.value.retry_after is not None and full.value.retry_after >= 1
    with pytest.raises(QueueTimeout):
        await waiter
    assert not pool.waiters


async def test_unknown_model_is_refused_once_every_child_is_known(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, 2)
    with pytest.raises(UnknownModel, match="available models: mock"):
        await pool.acquire("r", "gpt-x")


async def test_failures_in_a_row_eject_for_a_growing_cooldown(tmp_path: Path) -> None:
    clock = Clock()
    pool = make_pool(tmp_path, 2, clock)
    cooldowns = []
    for _ in range(3):
        for _ in range(2):
            child = pool.children[0]
            child.take("r") if child.state is ChildState.READY else None
            pool.release(child, Outcome.FAILED)
        child = pool.children[0]
        assert child.state is ChildState.COOLDOWN and child.cooldown_reason is CooldownReason.EJECTED
        cooldowns.append(child.cooldown_until - clock.now)  # type: ignore[operator]
        child.ready("test")
    assert cooldowns == [10.0, 20.0, 25.0]


async def test_a_retry_avoids_the_child_that_failed(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, 2)
    child = await pool.acquire("r", None, avoid=frozenset({"c0"}))
    assert child.id == "c1"
    pool.release(child, Outcome.SERVED)
    # With no other child alive at all, the retry may go back to the one it tried.
    pool.children[1].back_off(1.0, "test")
    pool.children[1].fail("test")
    assert (await pool.acquire("r2", None, avoid=frozenset({"c0"}))).id == "c0"


async def test_cancel_and_close_fail_waiters(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, 1)
    await pool.acquire("busy", None)
    cancelled = asyncio.create_task(pool.acquire("c", None))
    closed = asyncio.create_task(pool.acquire("d", None))
    await asyncio.sleep(0)
    waiter = pool.locate("c")
    assert waiter is not None and not isinstance(waiter, Child)
    pool.cancel_waiting(waiter)
    with pytest.raises(RequestCancelled):
        await cancelled
    pool.close("stopping")
    with pytest.raises(PoolClosed):
        await closed
    with pytest.raises(PoolClosed):
        await pool.acquire("late", None)


async def test_a_child_handed_to_a_cancelled_waiter_goes_back(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, 1)
    holder = await pool.acquire("busy", None)
    waiter = asyncio.create_task(pool.acquire("w", None))
    await asyncio.sleep(0)
    pool.release(holder, Outcome.SERVED)  # hands the child to the waiter...
    waiter.cancel()  # ...whose client leaves in the same instant
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert pool.children[0].state is ChildState.READY
    assert not pool.active


async def test_all_children_out_of_quota_fails_at_once_with_retry_after(tmp_path: Path) -> None:
    clock = Clock()
    pool = make_pool(tmp_path, 2, clock)
    for child, seconds in zip(pool.children, (30.0, 90.0), strict=True):
        child.take(f"r-{child.id}")
        pool.release(child, Outcome.QUOTA, cooldown=seconds)
        assert child.cooldown_reason is CooldownReason.QUOTA
    with pytest.raises(AllCoolingDown) as caught:
        await pool.acquire("late", "mock")
    assert caught.value.retry_after == 30


async def test_nothing_that_could_serve_fails_at_once(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, 1)
    pool.children[0].log_out("test", "test")  # no process: auth_expired at once
    with pytest.raises(NoChildAvailable, match="c0: auth_expired"):
        await pool.acquire("r", None)


async def test_the_pool_schedules_from_the_roster_as_children_join_and_leave(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, 1)
    joined = pool.roster.enlist(ChildSpec(Profile("late", tmp_path / "late.json"), PortTriple(7, 8, 9)))
    joined.models = ("mock",)
    holder = await pool.acquire("first", "mock")
    waiter = asyncio.create_task(pool.acquire("second", "mock"))
    await asyncio.sleep(0)
    joined.start("profile file added")
    joined.ready("health check passed")  # the roster tells the pool, which hands it to the waiter
    assert (await waiter) is joined and joined.request_id == "second"
    pool.release(joined, Outcome.SERVED)
    pool.release(holder, Outcome.SERVED)
    pool.roster.remove(holder)
    assert (await pool.acquire("third", "mock")) is joined  # round-robin would pick c0 next


async def test_a_waiter_for_a_model_no_ready_child_offers_is_refused_at_once(tmp_path: Path) -> None:
    # While the only child starts, its models are unknown: a request for any model may wait.
    roster = Roster(tmp_path)
    pool = Pool(roster, max_queue=2, queue_timeout=30.0, eject_after=2, eject_cooldown=1.0,
                eject_cooldown_max=1.0)  # fmt: skip
    child = roster.enlist(ChildSpec(Profile("c0", tmp_path / "c0.json"), PortTriple(1, 2, 3)))
    child.start("test")
    assert pool.models() == []
    waiting = asyncio.create_task(pool.acquire("r", "gemini-2.5-pro"))
    await asyncio.sleep(0)
    assert len(pool.waiters) == 1
    child.models = ("replica-pro",)  # what its /health says once it can serve
    child.ready("health check passed")
    with pytest.raises(UnknownModel, match="available models: replica-pro"):
        await asyncio.wait_for(waiting, 1)
    assert pool.models() == ["replica-pro"] and child.state is ChildState.READY


async def test_retry_after_guesses_long_until_an_answer_is_timed_then_measures(tmp_path: Path) -> None:
    clock = Clock()
    pool = make_pool(tmp_path, 1, clock, max_queue=0)
    child = await pool.acquire("first", None)
    with pytest.raises(QueueFull) as full:
        await pool.acquire("overflow", None)
    assert full.value.retry_after == 30  # nothing timed yet: not "1" while an answer takes seconds
    clock.now += 4.0
    pool.release(child, Outcome.SERVED)
    await pool.acquire("second", None)
    with pytest.raises(QueueFull) as full:
        await pool.acquire("overflow", None)
    assert full.value.retry_after == 4  # the one answer measured, not blended with the guess


async def test_a_free_child_goes_to_the_highest_lane_then_the_longest_waiting(tmp_path: Path) -> None:
    clock = Clock()
    pool = make_pool(tmp_path, 1, clock, max_queue=10, max_passed_over=30.0)
    holder = await pool.acquire("busy", None)
    arrivals = [("low", Lane.LOW), ("normal", Lane.NORMAL), ("high-1", Lane.HIGH), ("high-2", Lane.HIGH)]
    tasks = {}
    for name, lane in arrivals:
        tasks[name] = asyncio.create_task(pool.acquire(name, None, lane=lane))
        await asyncio.sleep(0)
        clock.now += 1
    assert pool.waiters.depth() == {Lane.HIGH: 2, Lane.NORMAL: 1, Lane.LOW: 1}
    order = []
    for _ in arrivals:
        pool.release(holder, Outcome.SERVED)
        done, _ = await asyncio.wait(tasks.values(), timeout=1, return_when=asyncio.FIRST_COMPLETED)
        (task,) = done
        holder = task.result()
        order.append(holder.request_id)
        tasks = {name: t for name, t in tasks.items() if t is not task}
        if order == ["high-1"]:
            clock.now += 40  # the low and normal ones have now waited past the bound
    assert order == ["high-1", "low", "normal", "high-2"]


async def test_lanes_wait_only_for_children_of_their_model(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, 2, max_queue=10)
    pool.children[1].models = ("other",)
    mock_holder = await pool.acquire("busy-mock", "mock")
    other_holder = await pool.acquire("busy-other", "other")
    high_other = asyncio.create_task(pool.acquire("high-other", "other", lane=Lane.HIGH))
    low_mock = asyncio.create_task(pool.acquire("low-mock", "mock", lane=Lane.LOW))
    await asyncio.sleep(0)
    pool.release(mock_holder, Outcome.SERVED)  # a high request cannot take a child without its model
    assert (await asyncio.wait_for(low_mock, 1)).id == "c0"
    assert not high_other.done()
    pool.release(other_holder, Outcome.SERVED)
    assert (await asyncio.wait_for(high_other, 1)).id == "c1"


async def test_a_request_behind_waiters_for_another_model_takes_a_free_child_at_once(tmp_path: Path) -> None:
    pool = make_pool(tmp_path, 2, max_queue=10)
    pool.children[1].models = ("other",)
    holder = await pool.acquire("busy-mock", "mock")
    waiting = asyncio.create_task(pool.acquire("high-mock", "mock", lane=Lane.HIGH))
    await asyncio.sleep(0)
    low_other = await asyncio.wait_for(pool.acquire("low-other", "other", lane=Lane.LOW), 1)
    assert low_other.id == "c1" and not waiting.done()
    pool.release(holder, Outcome.SERVED)
    assert (await asyncio.wait_for(waiting, 1)).id == "c0"


def quota_pool(tmp_path: Path, count: int, limits: dict[str, dict[str, int]]) -> tuple[Pool, QuotaTally]:
    tally = QuotaTally(DailyLimits({}, profile_limits=lambda profile: limits.get(profile, {})))
    roster = Roster(tmp_path, clock=Clock())
    pool = Pool(roster, max_queue=2, queue_timeout=5.0, eject_after=2, eject_cooldown=10.0,
                eject_cooldown_max=25.0, clock=Clock(), quota=tally)  # fmt: skip
    enlist_ready(roster, tmp_path, count)
    return pool, tally


async def test_the_child_with_the_most_quota_left_is_picked(tmp_path: Path) -> None:
    pool, tally = quota_pool(tmp_path, 3, {"c0": {"mock": 10}, "c1": {"mock": 10}, "c2": {"mock": 20}})
    now = time.time()
    for _ in range(4):
        tally.request("c0", "mock", now)
    picked = []
    for n in range(12):
        child = await pool.acquire(f"r{n}", "mock")
        picked.append(child.id)
        tally.request(child.id, "mock", now)  # as the edge counts it when the request ends
        pool.release(child, Outcome.SERVED)
    # c2 has twice the limit: it ends with twice the share of what the three used.
    used = {name: tally.used(name, "mock") for name in ("c0", "c1", "c2")}
    assert used == {"c0": 4, "c1": 4, "c2": 8}
    assert picked[:2] in (["c1", "c2"], ["c2", "c1"])


async def test_equal_use_goes_round_robin_and_a_retry_still_avoids(tmp_path: Path) -> None:
    pool, tally = quota_pool(tmp_path, 3, {})
    now = time.time()
    picked = []
    for n in range(6):
        child = await pool.acquire(f"r{n}", "mock")
        picked.append(child.id)
        tally.request(child.id, "mock", now)
        pool.release(child, Outcome.SERVED)
    assert picked == ["c0", "c1", "c2", "c0", "c1", "c2"]
    # c0 has used least, but the retry avoids it.
    tally.request("c1", "mock", now)
    tally.request("c2", "mock", now)
    child = await pool.acquire("retry", "mock", avoid=frozenset({"c0"}))
    assert child.id in ("c1", "c2")
    pool.release(child, Outcome.SERVED)


async def test_a_quota_refusal_is_counted_as_a_hit_for_its_model(tmp_path: Path) -> None:
    pool, tally = quota_pool(tmp_path, 2, {})
    child = await pool.acquire("r1", "mock")
    pool.release(child, Outcome.QUOTA, cooldown=60, model="mock")
    other = await pool.acquire("r2", "mock")
    pool.release(other, Outcome.QUOTA, cooldown=60)  # the whole account: counted for the model asked
    hits = {(r["profile"], r["model"]): r["quota_hits"] for r in tally.rows()}
    assert hits == {(child.id, "mock"): 1, (other.id, "mock"): 1}
    assert all(r["last_quota_hit"] for r in tally.rows())
