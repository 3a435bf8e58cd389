"""The driver on the replica of the 2026 page (spec-11), in a real Chromium: pop-ups at
load, temporary chat for every run, the model by `?model=`, a setting the model lacks, the
quota callout, drift reported. The answer is read from the rendered page here (labelled):
the network capture is tested where it is built."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright

from child.engines.base import Prompt, RateLimited
from child.engines.browser import find_chromium, launch_args
from child.replica import SESSION_COOKIE, ReplicaConfig
from child.site.config import AnswerSource, SiteConfig
from child.site.driver import AIStudio
from child.site.errors import UnsupportedSetting
from coordinator.protocol.link import AnswerEvent, Finish, TextDelta
from coordinator.protocol.openai import RunSettings
from tests.support.replica import FAST, SESSION, ThreadedReplica

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(find_chromium(None, os.environ) is None, reason="no Chromium"),
]
Start = Callable[..., "contextlib.AbstractAsyncContextManager[tuple[ThreadedReplica, Page]]"]


@pytest.fixture
async def replica_page() -> AsyncIterator[Start]:
    """replica_page(**config): a replica and a logged-in page on it, both stopped after."""
    async with contextlib.AsyncExitStack() as stack:
        playwright = await stack.enter_async_context(async_playwright())
        browser = await playwright.chromium.launch(
            executable_path=find_chromium(None, os.environ), args=launch_args()
        )
        stack.push_async_callback(browser.close)

        @contextlib.asynccontextmanager
        async def start(**overrides: Any) -> AsyncIterator[tuple[ThreadedReplica, Page]]:
            settings: dict[str, Any] = {"sessions": frozenset({SESSION}), **FAST, **overrides}
            replica = ThreadedReplica(ReplicaConfig(**settings))
            try:
                # The page's answers come from the replica's own HTTPS origin, signed by its CA.
                context = await browser.new_context(ignore_https_errors=True)
                await context.add_cookies([{"name": SESSION_COOKIE, "value": SESSION, "url": replica.url}])
                yield replica, await context.new_page()
                await context.close()
            finally:
                replica.close()

        yield start


def _site(replica: ThreadedReplica) -> AIStudio:
    return AIStudio(SiteConfig(url=replica.url, answer_source=AnswerSource.DOM, step_timeout_s=5))


def _prompt(text: str, model: str = "replica-flash", **settings: Any) -> Prompt:
    return Prompt(model, ({"role": "user", "content": text},), RunSettings(**settings))


async def _answer(site: AIStudio, prompt: Prompt) -> list[AnswerEvent]:
    async with contextlib.aclosing(site.run(prompt)) as events:
        return [event async for event in events]


def _text(events: list[AnswerEvent]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


async def test_requests_through_the_pop_ups_each_in_a_temporary_chat(replica_page: Start) -> None:
    async with replica_page(popups=True, popup_delay_ms=100) as (replica, page):
        site = _site(replica)
        await site.open(page)
        assert (site.model, site.selectors_missing) == ("replica-flash", ())
        first = await _answer(site, _prompt("hello there"))
        assert _text(first) == "Replica replica-flash answers: hello there"
        assert isinstance(first[-1], Finish)
        second = await _answer(
            site, _prompt("write markdown", model="replica-pro", temperature=0.4, top_p=0.5)
        )
        assert "Replica report" in _text(second) and "Thoughts" not in _text(second)
        assert "content_copy" not in _text(second)
        runs = replica.runs()
        assert [run["temporary"] for run in runs] == [True, True]  # nothing saved to the Drive
        assert [run["model"] for run in runs] == ["replica-flash", "replica-pro"]
        assert (runs[1]["settings"]["temperature"], runs[1]["settings"]["top_p"]) == (0.4, 0.5)
        assert all(run["proof_ok"] and run["status"] == "completed" for run in runs)
        assert (site.answers.last, site.answers.dom) == (AnswerSource.DOM, 2)  # labelled, counted
        assert site.selectors_missing == ()


async def test_a_model_without_temperature_refuses_it_with_a_400(replica_page: Start) -> None:
    async with replica_page() as (replica, page):
        site = _site(replica)
        await site.open(page)
        with pytest.raises(UnsupportedSetting) as caught:
            await _answer(site, _prompt("hi", model="replica-lite", temperature=0.2))
        assert (caught.value.status, caught.value.param) == (400, "temperature")
        events = await _answer(site, _prompt("hi", model="replica-lite", max_tokens=50, stop=["zz"]))
        assert _text(events) == "Replica replica-lite answers: hi"
        (run,) = replica.runs()
        assert run["settings"]["max_tokens"] == 50 and run["settings"]["stop"] == ["zz"]


async def test_the_quota_callout_read_from_the_page_is_a_rate_limit(replica_page: Start) -> None:
    # The page says "rate limit" for a quota; only the network answer names the model.
    async with replica_page(quota_after=1) as (replica, page):
        site = _site(replica)
        await site.open(page)
        await _answer(site, _prompt("one"))
        with pytest.raises(RateLimited):
            await _answer(site, _prompt("two"))


async def test_a_renamed_element_shows_as_missing(replica_page: Start) -> None:
    async with replica_page(drift=frozenset({"zero_state"})) as (replica, page):
        site = _site(replica)
        await site.open(page)
        assert site.selectors_missing == ("zero_state",)
        # The page still works without its ready marker; the drift stays reported.
        assert _text(await _answer(site, _prompt("hi"))) == "Replica replica-flash answers: hi"
        assert site.selectors_missing == ("zero_state",)
