"""What the site refuses, seen by the pool and the proxy: quota per model, rate limits,
permission denied. Real `Pool` and `Proxy` on `Child` objects without processes, a fake link."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from coordinator.lifecycle.child import Child
from coordinator.lifecycle.roster import Roster
from coordinator.lifecycle.states import ChildState, CooldownReason
from coordinator.protocol import openai as wire
from coordinator.serving.metrics import Metrics
from coordinator.serving.pool import AllCoolingDown, NoChildAvailable, Outcome, Pool
from coordinator.serving.proxy import Proxy, ProxyError
from coordinator.settings import Settings
from tests.support.lifecycle import FakeClock, enlist_ready
from tests.support.transport import FakeAnswer, FakeLink

MODELS = ("flash", "pro")
OK_BODY = b'{"choices": [{"message": {"role": "assistant", "content": "hello"}}]}'


def ask(model: str) -> wire.ChatRequest:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return wire.parse_chat_request(json.dumps(body).encode())


def quota(model: str | None, seconds: int) -> FakeAnswer:
    error = {"message": "out of quota", "code": "quota_exhausted", "param": "model", "model": model}
    return FakeAnswer(429, json.dumps({"error": error}).encode(), headers={"retry-after": str(seconds)})


def refused(code: str, status: int = 403) -> FakeAnswer:
    return FakeAnswer(status, json.dumps({"error": {"message": "no", "code": code}}).encode())


def build(tmp_path: Path, count: int, **options: float) -> tuple[Proxy, FakeLink, list[Child], FakeClock]:
    """`count` ready children offering flash and pro, on API ports 1, 2, ...; pool and proxy as
    `run` builds them, on a fake clock."""
    settings = Settings(profiles=tmp_path, **options)  # type: ignore[arg-type]
    clock = FakeClock()
    roster = Roster(tmp_path, clock=clock)
    pool = Pool(
        roster,
        max_queue=settings.max_queue,
        queue_timeout=settings.queue_timeout,
        eject_after=settings.eject_after,
        eject_cooldown=settings.eject_cooldown,
        eject_cooldown_max=settings.eject_cooldown_max,
        permission_cooldown=settings.permission_cooldown,
        clock=clock,
    )
    children = enlist_ready(roster, tmp_path, count)
    for child in children:
        child.models = MODELS
    link = FakeLink()
    return Proxy(pool, settings, link, "token", Metrics()), link, children, clock


# -- the pool -------------------------------------------------------------------------------


async def test_a_model_out_of_quota_skips_the_child_for_that_model_only(tmp_path: Path) -> None:
    proxy, _, (first, second), clock = build(tmp_path, 2)
    pool = proxy.pool
    first.take("r0")
    pool.release(first, Outcome.QUOTA, cooldown=600, model="pro")
    assert first.state is ChildState.READY and first.snapshot()["model_cooldowns"] == {"pro": 600.0}
    for n in range(3):  # pro: only the other child, every time
        child = await pool.acquire(f"p{n}", "pro")
        assert child is second
        pool.release(child, Outcome.SERVED)
    served = set()
    for n in range(2):  # flash: both, round-robin as ever
        child = await pool.acquire(f"f{n}", "flash")
        served.add(child.id)
        pool.release(child, Outcome.SERVED)
    assert served == {"c0", "c1"}
    clock.advance(601)  # the quota resets
    assert {(await pool.acquire(f"late{n}", "pro")).id for n in range(2)} == {"c0", "c1"}


async def test_a_model_every_child_has_exhausted_is_refused_at_once_naming_it(tmp_path: Path) -> None:
    proxy, _, children, _ = build(tmp_path, 3)
    pool = proxy.pool
    for child, seconds in zip(children, (900, 300, 600), strict=True):
        child.take(f"r-{child.id}")
        pool.release(child, Outcome.QUOTA, cooldown=seconds, model="pro")
    with pytest.raises(AllCoolingDown) as caught:
        await pool.acquire("late", "pro")
    error = caught.value
    assert (error.status, error.code, error.param) == (429, "quota_exhausted", "model")
    assert error.retry_after == 300, "Retry-After is the soonest reset"
    assert "'pro'" in error.message
    assert (await pool.acquire("other", "flash")).state is ChildState.BUSY


async def test_the_default_model_is_the_childs_first(tmp_path: Path) -> None:
    proxy, _, (only,), _ = build(tmp_path, 1)
    only.take("r0")
    proxy.pool.release(only, Outcome.QUOTA, cooldown=60, model="flash")  # flash: its first model
    with pytest.raises(AllCoolingDown, match="default model"):
        await proxy.pool.acquire("r1", None)


async def test_a_waiter_for_a_model_is_refused_once_the_last_child_for_it_runs_out(tmp_path: Path) -> None:
    proxy, _, (only,), _ = build(tmp_path, 1)
    pool = proxy.pool
    holder = await pool.acquire("r0", "pro")
    waiting = asyncio.create_task(pool.acquire("r1", "pro"))
    flash = asyncio.create_task(pool.acquire("r2", "flash"))
    await asyncio.sleep(0)
    assert len(pool.waiters) == 2
    pool.release(holder, Outcome.QUOTA, cooldown=120, model="pro")
    with pytest.raises(AllCoolingDown):
        await asyncio.wait_for(waiting, 1)
    assert (await asyncio.wait_for(flash, 1)) is only, "the child still serves its other model"


async def test_a_rate_limit_cools_the_whole_child(tmp_path: Path) -> None:
    proxy, _, (only,), clock = build(tmp_path, 1)
    only.take("r0")
    proxy.pool.release(only, Outcome.RATE_LIMITED, cooldown=300)
    assert only.state is ChildState.COOLDOWN and only.cooldown_reason is CooldownReason.RATE_LIMITED
    with pytest.raises(AllCoolingDown) as caught:
        await proxy.pool.acquire("r1", "flash")
    assert caught.value.retry_after == 300
    assert only.cooldown_until == clock.now + 300


async def test_permission_denied_cools_for_a_while_that_doubles_and_a_success_forgives(
    tmp_path: Path,
) -> None:
    proxy, _, (only,), clock = build(tmp_path, 1, permission_cooldown=60.0)
    pool = proxy.pool
    for expected in (60, 120, 240):
        only.take("r")
        pool.release(only, Outcome.PERMISSION_DENIED, reason="refused")
        assert only.cooldown_reason is CooldownReason.PERMISSION_DENIED
        assert only.cooldown_until == clock.now + expected
        with pytest.raises(NoChildAvailable, match="permission_denied"):
            await pool.acquire("meanwhile", "flash")
        only.ready("cooldown over")
    only.take("r")
    pool.release(only, Outcome.SERVED)
    only.take("r")
    pool.release(only, Outcome.PERMISSION_DENIED)
    assert only.cooldown_until == clock.now + 60


# -- the proxy ------------------------------------------------------------------------------


async def test_a_quota_answer_cools_that_model_and_the_request_goes_on_without_using_an_attempt(
    tmp_path: Path,
) -> None:
    proxy, link, (first, second, third), _ = build(tmp_path, 3, max_attempts=1)
    link.script(1, quota("pro", 600))
    link.script(2, quota("pro", 300))
    link.script(3, FakeAnswer(200, OK_BODY))

    answer = await proxy.open(ask("pro"), b"{}", "r1")

    assert (answer.status, answer.child, link.asked()) == (200, third, [1, 2, 3])
    assert first.model_cooldowns.keys() == second.model_cooldowns.keys() == {"pro"}
    assert first.state is ChildState.READY and second.state is ChildState.READY


async def test_a_model_out_of_quota_everywhere_is_a_429_naming_it_with_the_soonest_reset(
    tmp_path: Path,
) -> None:
    proxy, link, _, _ = build(tmp_path, 2)
    link.script(1, quota("pro", 900))
    link.script(2, quota("pro", 450))

    with pytest.raises(AllCoolingDown) as caught:
        await proxy.open(ask("pro"), b"{}", "r1")

    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (429, "quota_exhausted", 450)
    link.script(1, FakeAnswer(200, OK_BODY))
    assert (await proxy.open(ask("flash"), b"{}", "r2")).status == 200
    with pytest.raises(AllCoolingDown):  # known now: no child is asked
        await proxy.open(ask("pro"), b"{}", "r3")
    assert link.asked() == [1, 2, 1]


async def test_a_quota_that_names_no_model_cools_the_whole_child(tmp_path: Path) -> None:
    proxy, link, (first, second), _ = build(tmp_path, 2)
    link.script(1, quota(None, 60))
    link.script(2, FakeAnswer(200, OK_BODY))
    assert (await proxy.open(ask("pro"), b"{}", "r1")).child is second
    assert first.state is ChildState.COOLDOWN and first.cooldown_reason is CooldownReason.QUOTA


async def test_a_rate_limited_child_is_cooled_and_the_request_goes_on(tmp_path: Path) -> None:
    proxy, link, (first, second), _ = build(tmp_path, 2, max_attempts=1)
    link.script(1, FakeAnswer(429, b'{"error": {"code": "rate_limited"}}', headers={"retry-after": "300"}))
    link.script(2, FakeAnswer(200, OK_BODY))
    assert (await proxy.open(ask("flash"), b"{}", "r1")).child is second
    assert first.state is ChildState.COOLDOWN and first.cooldown_reason is CooldownReason.RATE_LIMITED


async def test_permission_denied_is_tried_on_one_other_child_then_refused(tmp_path: Path) -> None:
    proxy, link, (first, second, third, fourth), _ = build(tmp_path, 4, max_attempts=4)
    link.script(1, refused("permission_denied"))
    link.script(2, FakeAnswer(200, OK_BODY))
    assert (await proxy.open(ask("flash"), b"{}", "r1")).child is second
    assert first.cooldown_reason is CooldownReason.PERMISSION_DENIED

    link.script(3, refused("permission_denied"))
    link.script(4, refused("permission_denied"))
    with pytest.raises(ProxyError) as caught:
        await proxy.open(ask("flash"), b"{}", "r2")
    assert (caught.value.status, caught.value.code) == (403, "permission_denied")
    assert "c2 and c3" in caught.value.message
    assert link.asked() == [1, 2, 3, 4], "a second refusal ends the request: c1 is not offered it"
    assert second.state is ChildState.READY
    assert all(c.cooldown_reason is CooldownReason.PERMISSION_DENIED for c in (third, fourth))


async def test_a_403_without_that_code_is_still_a_failing_child(tmp_path: Path) -> None:
    # A child that does not know our token belongs to another run: a failure, not a refusal.
    proxy, link, (first, second), _ = build(tmp_path, 2)
    link.script(1, refused("invalid_child_token"))
    link.script(2, FakeAnswer(200, OK_BODY))
    assert (await proxy.open(ask("flash"), b"{}", "r1")).child is second
    assert first.state is ChildState.READY and first.errors_in_row == 1
