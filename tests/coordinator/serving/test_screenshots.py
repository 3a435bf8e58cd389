"""The screenshot cache, on a fake child link and real Child objects (no process)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

import pytest

from coordinator.lifecycle.child import Child
from coordinator.lifecycle.roster import Roster
from coordinator.protocol.link import TOKEN_HEADER
from coordinator.serving.screenshots import PNG_SIGNATURE, Screenshots, ScreenshotUnavailable
from coordinator.serving.transport import ConnectFailed
from tests.support.lifecycle import FakeClock, FakeProcess, enlist_ready
from tests.support.transport import FakeAnswer, FakeLink, Hang

PNG = PNG_SIGNATURE + b"picture-1"
PNG_2 = PNG_SIGNATURE + b"picture-2"


def process(pid: int) -> asyncio.subprocess.Process:
    return cast(asyncio.subprocess.Process, FakeProcess(pid, [], {}, ignores_term=False))


def running(tmp_path: Path, count: int = 1) -> list[Child]:
    children = enlist_ready(Roster(tmp_path), tmp_path, count)
    for index, child in enumerate(children):
        child.process = process(4000 + index)
    return children


def shots(link: FakeLink, clock: FakeClock, **options: float) -> Screenshots:
    return Screenshots(link, "token", clock=clock, **options)


async def test_a_picture_is_kept_for_the_ttl_then_taken_again(tmp_path: Path) -> None:
    (child,) = running(tmp_path)
    link, clock = FakeLink(), FakeClock()
    link.script(1, FakeAnswer(200, PNG), FakeAnswer(200, PNG_2))
    cache = shots(link, clock, ttl=3.0)
    assert await cache.get(child) == PNG
    clock.advance(2.9)
    assert await cache.get(child) == PNG
    assert link.asked("/screenshot") == [1]
    assert link.sent[0].headers == {TOKEN_HEADER: "token"}
    clock.advance(0.2)
    assert await cache.get(child) == PNG_2
    assert cache.fetches == 2


async def test_many_viewers_at_once_cost_one_picture(tmp_path: Path) -> None:
    (child,) = running(tmp_path)
    link = FakeLink()
    slow = FakeAnswer(200, end=False)
    link.script(1, slow)
    cache = shots(link, FakeClock())
    viewers = [asyncio.create_task(cache.get(child)) for _ in range(20)]
    await asyncio.sleep(0)
    viewers[0].cancel()  # one viewer leaves: the others still get the picture
    slow.feed(PNG)
    slow.finish()
    results = await asyncio.gather(*viewers[1:])
    assert results == [PNG] * 19 and cache.fetches == 1


async def test_a_restarted_child_is_never_shown_with_the_old_page(tmp_path: Path) -> None:
    (child,) = running(tmp_path)
    link = FakeLink()
    link.script(1, FakeAnswer(200, PNG), FakeAnswer(200, PNG_2))
    cache = shots(link, FakeClock())
    assert await cache.get(child) == PNG
    child.process = process(5000)
    assert await cache.get(child) == PNG_2


async def test_no_picture_of_a_child_that_is_not_running(tmp_path: Path) -> None:
    (child,) = running(tmp_path)
    child.process = None
    link = FakeLink()
    with pytest.raises(ScreenshotUnavailable, match="no page to show"):
        await shots(link, FakeClock()).get(child)
    assert link.sent == []


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (
            FakeAnswer(503, b'{"error": {"message": "no page to show yet: opening the site"}}'),
            "opening the site",
        ),
        (FakeAnswer(200, b"<html>not a picture</html>"), "not a PNG"),
        (ConnectFailed("connection refused"), "could not be reached"),
        (Hang(), "longer than 0.05s"),
    ],
)
async def test_a_failed_picture_says_why_and_is_not_cached(
    tmp_path: Path, reply: FakeAnswer | ConnectFailed | Hang, said: str
) -> None:
    (child,) = running(tmp_path)
    link = FakeLink()
    link.script(1, reply, FakeAnswer(200, PNG))
    cache = shots(link, FakeClock(), timeout=0.05)
    with pytest.raises(ScreenshotUnavailable, match=said):
        await cache.get(child)
    assert await cache.get(child) == PNG
