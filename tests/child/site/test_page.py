"""The driver's page code in a real Chromium, on a small stand-in of the 2026 page
(`page.html`): pop-ups at load, temporary chat, model by label, settings in a collapsed
group, the labelled DOM fallback, reset, drift. The replica tests the whole flow."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, Route, async_playwright

from child.engines.base import Prompt, RateLimited
from child.engines.browser import find_chromium, launch_args
from child.site.config import AnswerSource, SiteConfig
from child.site.driver import AIStudio
from child.site.errors import DriverError, UnsupportedSetting
from coordinator.protocol.link import AnswerEvent, Finish, TextDelta
from coordinator.protocol.openai import RunSettings

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(find_chromium(None, os.environ) is None, reason="no Chromium"),
]
PAGE = (Path(__file__).parent / "page.html").read_bytes()
ORIGIN = "http://fixture.test"


@pytest.fixture
async def page() -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=find_chromium(None, os.environ), args=launch_args()
        )
        try:
            context = await browser.new_context()

            async def serve(route: Route) -> None:
                await route.fulfill(body=PAGE, content_type="text/html")

            await context.route(f"{ORIGIN}/**", serve)
            yield await context.new_page()
        finally:
            await browser.close()


def _config(**changes: Any) -> SiteConfig:
    # DOM only: the stand-in sends no network answer. Short steps: a failure shows fast.
    return SiteConfig(url=ORIGIN, answer_source=AnswerSource.DOM, step_timeout_s=2, **changes)


def _prompt(text: str, model: str = "fixture-flash", **settings: Any) -> Prompt:
    return Prompt(model, ({"role": "user", "content": text},), RunSettings(**settings))


async def _answer(site: AIStudio, prompt: Prompt) -> list[AnswerEvent]:
    async with contextlib.aclosing(site.run(prompt)) as events:
        return [event async for event in events]


async def _runs(page: Page) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = await page.evaluate("() => window.__runs")
    return runs


async def test_a_request_through_pop_ups_in_a_temporary_chat_read_from_the_dom_labelled(page: Page) -> None:
    site = AIStudio(_config())
    await site.open(page)
    assert site.model == "fixture-flash" and site.selectors_missing == ()
    await page.wait_for_function("() => window.__dismissed === 2", timeout=5000)
    events = await _answer(site, _prompt("show me code"))
    text = "".join(event.text for event in events if isinstance(event, TextDelta))
    # Without the thinking and the code block's header and icon text.
    assert text == "Fixture fixture-flash answers: show me code\nx = 1"
    assert isinstance(events[-1], Finish)
    assert (site.answers.last, site.answers.dom) == (AnswerSource.DOM, 1)
    assert site.answers.reason == "answer_source = dom in the site config"
    (run,) = await _runs(page)
    assert run["temporary"] is True
    # Reset: New chat → Discard, the empty chat back, still temporary, nothing missing.
    assert await page.locator("ms-zero-state").count() == 1
    assert await page.locator("ms-incognito-mode-indicator").count() == 1
    assert [step.name for step in site.trace.steps] == ["prepare", "submit", "answer", "reset"]
    assert all(step.ok for step in site.trace.steps)
    # A second request on the reset page.
    await _answer(site, _prompt("again"))
    assert [r["prompt"] for r in await _runs(page)] == ["show me code", "again"]


async def test_the_model_is_opened_by_url_and_checked_on_its_label(page: Page) -> None:
    site = AIStudio(_config())
    await site.open(page)
    await _answer(site, _prompt("hi", model="fixture-pro", temperature=0.3))
    (run,) = await _runs(page)
    assert (run["model"], run["temperature"], run["temporary"]) == ("fixture-pro", "0.3", True)
    assert "model=fixture-pro" in page.url


async def test_a_setting_the_model_lacks_is_a_400_naming_it(page: Page) -> None:
    site = AIStudio(_config())
    await site.open(page)
    with pytest.raises(UnsupportedSetting) as caught:
        await _answer(site, _prompt("hi", model="fixture-lite", temperature=0.3))
    assert (caught.value.status, caught.value.param) == (400, "temperature")
    with pytest.raises(UnsupportedSetting) as caught:
        await _answer(site, _prompt("hi", model="fixture-lite", top_p=0.5))
    assert caught.value.param == "top_p"  # looked for in the advanced group, opened for it
    assert await _runs(page) == []
    await _answer(site, _prompt("hi", model="fixture-lite", max_tokens=100))
    assert len(await _runs(page)) == 1


async def test_the_page_error_callout_is_read(page: Page) -> None:
    site = AIStudio(_config())
    await site.open(page)
    # The page's words say rate limit: the whole account's, not one model's quota.
    with pytest.raises(RateLimited) as caught:
        await _answer(site, _prompt("quota please"))
    assert caught.value.retry_after == 300


async def test_a_renamed_element_is_reported_and_a_broken_selector_names_its_step(page: Page) -> None:
    site = AIStudio(_config(selectors={**SiteConfig().selectors, "prompt": "textarea.gone"}))
    await site.open(page)
    assert site.selectors_missing == ("prompt",)
    with pytest.raises(DriverError) as caught:
        await _answer(site, _prompt("hi"))
    assert caught.value.message == "step prompt: selector prompt (`textarea.gone`) matched nothing"
