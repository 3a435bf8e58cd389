"""The proxy's decisions, on a fake child link and a real pool of Child objects (no process)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from coordinator.lifecycle.child import Child
from coordinator.lifecycle.roster import Roster
from coordinator.lifecycle.states import ChildState, CooldownReason
from coordinator.protocol import openai as wire
from coordinator.serving.metrics import Metrics
from coordinator.serving.pool import Pool
from coordinator.serving.proxy import Proxy, ProxyError
from coordinator.serving.transport import ConnectFailed, ConnectionLost
from coordinator.settings import Settings
from tests.support.lifecycle import enlist_ready
from tests.support.transport import FakeAnswer, FakeLink, Hang

STREAM = wire.parse_chat_request(
    b'{"model": "mock", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'
)
PLAIN = wire.parse_chat_request(b'{"model": "mock", "messages": [{"role": "user", "content": "hi"}]}')
OK_BODY = b'{"choices": [{"message": {"role": "assistant", "content": "hello"}}]}'


def event(text: str) -> bytes:
    return b"data: " + json.dumps({"choices": [{"delta": {"content": text}}]}).encode() + b"\n\n"


def make_proxy(tmp_path: Path, count: int, **options: float) -> tuple[Proxy, FakeLink, list[Child]]:
    """`count` ready children on API ports 1, 2, ...; the pool and settings as `run` builds them."""
    settings = Settings(profiles=tmp_path, **options)  # type: ignore[arg-type]
    roster = Roster(tmp_path)
    pool = Pool(
        roster,
        max_queue=settings.max_queue,
        queue_timeout=settings.queue_timeout,
        eject_after=settings.eject_after,
        eject_cooldown=settings.eject_cooldown,
        eject_cooldown_max=settings.eject_cooldown_max,
    )
    children = enlist_ready(roster, tmp_path, count)
    link = FakeLink()
    return Proxy(pool, settings, link, "token", Metrics()), link, children


async def collect(chunks: AsyncGenerator[bytes, None]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


@pytest.mark.parametrize(
    "failure",
    [
        FakeAnswer(500, b'{"error": {"code": "engine_error"}}'),
        FakeAnswer(429, b'{"error": {"code": "child_busy"}}'),
        FakeAnswer(429, b'{"error": {"code": "quota_exhausted"}}', headers={"retry-after": "7"}),
        FakeAnswer(401, b'{"error": {"code": "auth_expired"}}'),
        ConnectFailed("connection refused"),
        FakeAnswer(200, end=True),  # a stream closed before its first byte
    ],
    ids=["5xx", "busy", "quota", "logged-out", "refused", "empty-stream"],
)
async def test_a_failure_before_the_first_byte_goes_to_another_child(
    tmp_path: Path, failure: FakeAnswer | ConnectFailed
) -> None:
    proxy, link, (first, second) = make_proxy(tmp_path, 2)
    link.script(1, failure)
    link.script(2, FakeAnswer(200, event("hello"), wire.SSE_DONE))

    answer = await proxy.open(STREAM, b"{}", "r1")

    assert link.asked() == [1, 2]
    assert answer.child is second
    assert await collect(proxy.relay(answer, "r1")) == event("hello") + wire.SSE_DONE
    assert first.state is not ChildState.BUSY and second.state is ChildState.READY


async def test_a_client_error_is_the_answer_and_not_retried(tmp_path: Path) -> None:
    proxy, link, _ = make_proxy(tmp_path, 2)
    link.script(1, FakeAnswer(400, b'{"error": {"code": "invalid_request"}}'))

    answer = await proxy.open(PLAIN, b"{}", "r1")

    assert (answer.status, link.asked()) == (400, [1])


async def test_an_answer_that_broke_the_requests_format_is_the_answer_and_counts_against_no_child(
    tmp_path: Path,
) -> None:
    proxy, link, (child, _) = make_proxy(tmp_path, 2, eject_after=1)
    link.script(
        1,
        FakeAnswer(
            502, b'{"error": {"code": "invalid_output"}}', headers={"x-coordinator-tools": "output=page"}
        ),
    )

    answer = await proxy.open(PLAIN, b"{}", "r1")

    assert (answer.status, link.asked()) == (502, [1])
    assert child.state is ChildState.READY and child.errors_in_row == 0
    assert answer.headers == ((b"x-coordinator-tools", b"output=page"),)


async def test_every_attempt_failing_ends_in_502_naming_the_last_reason(tmp_path: Path) -> None:
    proxy, link, _ = make_proxy(tmp_path, 3, max_attempts=2)
    link.script(1, FakeAnswer(500, b"{}"))
    link.script(2, ConnectFailed("connection refused"))

    with pytest.raises(ProxyError) as refused:
        await proxy.open(PLAIN, b"{}", "r1")

    assert (refused.value.status, refused.value.code) == (502, "child_failed")
    assert "child c1: connection refused" in refused.value.message
    assert link.asked() == [1, 2]


async def test_a_stream_broken_after_its_first_byte_ends_with_an_error_event_and_no_done(
    tmp_path: Path,
) -> None:
    proxy, link, (first, _) = make_proxy(tmp_path, 2)
    link.script(1, FakeAnswer(200, event("hel"), ConnectionLost("connection closed mid-answer")))

    answer = await proxy.open(STREAM, b"{}", "r1")
    body = await collect(proxy.relay(answer, "r1"))

    assert link.asked() == [1]  # no retry once the client has bytes
    assert body.startswith(event("hel"))
    assert wire.SSE_DONE not in body
    error = json.loads(body.split(b"data: ")[-1])["error"]
    assert (error["code"], error["type"]) == ("child_failed", "server_error")
    assert link.asked("/v1/cancel/r1") == [1]
    assert first.state is ChildState.COOLDOWN


async def test_chunks_are_relayed_as_the_child_sends_them(tmp_path: Path) -> None:
    proxy, link, (child,) = make_proxy(tmp_path, 1)
    stream = FakeAnswer(200, event("one"), end=False)
    link.script(1, stream)

    answer = await proxy.open(STREAM, b"{}", "r1")
    relay = proxy.relay(answer, "r1")
    assert await anext(relay) == event("one")

    stream.feed(event("two"))
    # The second chunk leaves before the child has finished its answer.
    assert await asyncio.wait_for(anext(relay), 1) == event("two")
    assert child.request_id == "r1"  # still serving it

    stream.feed(wire.SSE_DONE)
    stream.finish()
    assert await collect(relay) == wire.SSE_DONE
    assert child.state is ChildState.READY and child.served == 1
    assert stream.closed and stream.idle_limit == proxy.settings.idle_timeout


async def test_chunks_that_arrived_together_leave_in_one_write(tmp_path: Path) -> None:
    proxy, link, _ = make_proxy(tmp_path, 1)
    stream = FakeAnswer(200, event("one"), end=False)
    link.script(1, stream)

    answer = await proxy.open(STREAM, b"{}", "r1")
    relay = proxy.relay(answer, "r1")
    await anext(relay)
    stream.feed(event("two"))
    stream.feed(event("three"))

    assert await anext(relay) == event("two") + event("three")
    await relay.aclose()


async def test_a_client_leaving_before_the_first_byte_cancels_on_the_child(tmp_path: Path) -> None:
    proxy, link, (child,) = make_proxy(tmp_path, 1)
    link.script(1, Hang())

    opening = asyncio.create_task(proxy.open(STREAM, b"{}", "r1"))
    while not link.sent:  # the child was acquired and asked
        await asyncio.sleep(0)
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening

    assert link.asked("/v1/cancel/") == [1]
    assert link.sent[-1].path == "/v1/cancel/r1"
    assert child.state is ChildState.READY


async def test_a_client_leaving_mid_stream_cancels_on_the_child(tmp_path: Path) -> None:
    proxy, link, (child,) = make_proxy(tmp_path, 1)
    link.script(1, FakeAnswer(200, event("one"), end=False))

    answer = await proxy.open(STREAM, b"{}", "r1")
    relay = proxy.relay(answer, "r1")
    await anext(relay)
    await relay.aclose()

    assert link.asked("/v1/cancel/r1") == [1]
    assert child.state is ChildState.READY and child.served == 0


async def test_a_child_failing_in_a_row_is_ejected(tmp_path: Path) -> None:
    proxy, link, (child,) = make_proxy(tmp_path, 1, max_attempts=1, eject_after=2)
    link.script(1, FakeAnswer(500, b"{}"), FakeAnswer(500, b"{}"))

    for n in range(2):
        assert child.state is ChildState.READY
        with pytest.raises(ProxyError):
            await proxy.open(PLAIN, b"{}", f"r{n}")

    assert child.state is ChildState.COOLDOWN
    assert child.cooldown_reason == "ejected"


async def test_a_success_resets_the_count_of_failures(tmp_path: Path) -> None:
    proxy, link, (child,) = make_proxy(tmp_path, 1, max_attempts=1, eject_after=2)
    link.script(1, FakeAnswer(500, b"{}"), FakeAnswer(200, OK_BODY), FakeAnswer(500, b"{}"))

    for n in range(3):
        with pytest.raises(ProxyError) if n != 1 else contextlib.nullcontext():
            await proxy.open(PLAIN, b"{}", f"r{n}")

    assert child.state is ChildState.READY


async def test_a_child_answering_busy_is_kept_out_until_its_health_says_it_is_idle(tmp_path: Path) -> None:
    # Busy with a request the pool did not give it: put back as ready, it would be picked again.
    proxy, link, (stuck, other) = make_proxy(tmp_path, 2)
    link.script(1, FakeAnswer(429, b'{"error": {"code": "child_busy"}}'))
    link.script(2, FakeAnswer(200, OK_BODY), FakeAnswer(200, OK_BODY))

    for n in range(2):
        assert (await proxy.open(PLAIN, b"{}", f"r{n}")).child is other

    assert link.asked() == [1, 2, 2]
    assert stuck.state is ChildState.COOLDOWN and stuck.cooldown_reason is CooldownReason.STRAY
    assert stuck.errors_in_row == 0


@pytest.mark.parametrize("status", [400, 404, 413, 422])
async def test_a_client_error_counts_against_no_child(tmp_path: Path, status: int) -> None:
    proxy, link, (child, _) = make_proxy(tmp_path, 2, eject_after=1)
    link.script(1, FakeAnswer(status, b'{"error": {"code": "invalid_request"}}'))

    answer = await proxy.open(PLAIN, b"{}", "r1")

    assert (answer.status, link.asked()) == (status, [1])
    assert child.state is ChildState.READY and child.errors_in_row == 0


async def test_a_request_failing_the_same_way_on_two_children_is_a_502_that_ejects_none(
    tmp_path: Path,
) -> None:
    proxy, link, children = make_proxy(tmp_path, 3, eject_after=2)
    poison = b'{"error": {"code": "engine_error"}}'
    for port in (1, 2, 3):
        link.script(port, *[FakeAnswer(500, poison) for _ in range(4)])

    for n in range(4):
        with pytest.raises(ProxyError) as refused:
            await proxy.open(PLAIN, b"{}", f"r{n}")
        assert (refused.value.status, refused.value.code) == (502, "child_failed")
        assert "failed the same way" in refused.value.message

    assert len(link.asked()) == 8  # two children each, never the third
    assert [(c.state, c.errors_in_row) for c in children] == [(ChildState.READY, 0)] * 3


async def test_different_failures_are_the_children_and_go_on_to_the_next(tmp_path: Path) -> None:
    proxy, link, (first, second, third) = make_proxy(tmp_path, 3)
    link.script(1, FakeAnswer(500, b'{"error": {"code": "engine_error"}}'))
    link.script(2, FakeAnswer(502, b'{"error": {"code": "engine_error"}}'))
    link.script(3, FakeAnswer(200, OK_BODY))

    answer = await proxy.open(PLAIN, b"{}", "r1")

    assert (answer.child, link.asked()) == (third, [1, 2, 3])
    assert (first.errors_in_row, second.errors_in_row) == (1, 1)


async def test_the_same_failure_twice_on_the_only_child_ends_the_request(tmp_path: Path) -> None:
    proxy, link, (child,) = make_proxy(tmp_path, 1, eject_after=1)
    link.script(1, *[FakeAnswer(500, b"{}") for _ in range(3)])

    with pytest.raises(ProxyError) as refused:
        await proxy.open(PLAIN, b"{}", "r1")

    assert "failed the same way on child c0, twice" in refused.value.message
    assert link.asked() == [1, 1]
    assert (child.state, child.errors_in_row) == (ChildState.READY, 0)


async def test_a_failure_is_charged_once_the_request_is_served_elsewhere(tmp_path: Path) -> None:
    # Charged after the fact, the failure still ejects a child that fails alone.
    proxy, link, (bad, good) = make_proxy(tmp_path, 2, eject_after=1)
    link.script(1, FakeAnswer(500, b'{"error": {"code": "engine_error"}}'))
    link.script(2, FakeAnswer(200, OK_BODY))

    assert (await proxy.open(PLAIN, b"{}", "r1")).child is good

    assert bad.state is ChildState.COOLDOWN and bad.cooldown_reason is CooldownReason.EJECTED


def refusal_event(code: str, **fields: object) -> bytes:
    return wire.sse_event(
        {"error": {"message": "refused", "type": "rate_limit_error", "code": code, **fields}}
    )


async def test_a_quota_after_the_first_byte_cools_that_model_only(tmp_path: Path) -> None:
    proxy, link, (child,) = make_proxy(tmp_path, 1)
    link.script(
        1, FakeAnswer(200, event("hel"), refusal_event("quota_exhausted", model="mock", retry_after=900))
    )

    answer = await proxy.open(STREAM, b"{}", "r1")
    body = await collect(proxy.relay(answer, "r1"))

    assert json.loads(body.split(b"data: ")[-1])["error"]["code"] == "quota_exhausted"  # passed on as it is
    assert child.state is ChildState.READY, "a model's quota leaves the child serving its other models"
    assert 890 < child.model_cooldown_left("mock", child.clock()) <= 900
    assert link.asked("/v1/cancel/r1") == [], "the child ended the answer itself"


async def test_a_rate_limit_after_the_first_byte_cools_the_whole_child(tmp_path: Path) -> None:
    proxy, link, (child,) = make_proxy(tmp_path, 1)
    link.script(1, FakeAnswer(200, event("hel"), refusal_event("rate_limited", retry_after=120)))

    answer = await proxy.open(STREAM, b"{}", "r1")
    await collect(proxy.relay(answer, "r1"))

    assert (child.state, child.cooldown_reason) == (ChildState.COOLDOWN, CooldownReason.RATE_LIMITED)
    assert child.cooldown_until is not None and 110 < child.cooldown_until - child.clock() <= 120
    assert child.model_cooldowns == {}
