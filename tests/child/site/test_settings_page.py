"""The settings step's failures on the replica's page in a real Chromium (the driver alone,
no coordinator): a drifted control is refused naming the request's field with a hint to
the selector, a switch the page keeps disabled is refused naming its field, and a level
chosen is reported and put back."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from playwright.async_api import Page, async_playwright

from child.engines.base import NotSupported, Prompt
from child.engines.browser import find_chromium, launch_args
from child.replica import SESSION_COOKIE, ReplicaConfig
from child.site.config import AnswerSource, SiteConfig
from child.site.driver import AIStudio
from child.site.errors import UnsupportedSetting
from coordinator.protocol.link import AnswerEvent, SettingApplied
from coordinator.protocol.request import ChatOptions
from tests.support.replica import FAST, SESSION, ThreadedReplica

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(find_chromium(None, os.environ) is None, reason="no Chromium"),
]


@pytest.fixture(scope="module")
def replica() -> Iterator[ThreadedReplica]:
    settings: dict[str, Any] = {"sessions": {SESSION}, "popups": False, "drift": {"search_tool"}, **FAST}
    config = ReplicaConfig(**settings)
    served = ThreadedReplica(config)
    yield served
    served.close()


@pytest.fixture
async def page(replica: ThreadedReplica) -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=find_chromium(None, os.environ), args=launch_args()
        )
        try:
            # The replica's answer origin has its own CA; the capture is not used here.
            context = await browser.new_context(ignore_https_errors=True)
            await context.add_cookies([{"name": SESSION_COOKIE, "value": SESSION, "url": replica.url}])
            yield await context.new_page()
        finally:
            await browser.close()


def _site(replica: ThreadedReplica) -> AIStudio:
    return AIStudio(SiteConfig(url=replica.url, answer_source=AnswerSource.DOM, step_timeout_s=3))


def _prompt(model: str, **options: Any) -> Prompt:
    return Prompt(model, ({"role": "user", "content": "hello"},), options=ChatOptions(**options))


async def _answer(site: AIStudio, prompt: Prompt) -> list[AnswerEvent]:
    async with contextlib.aclosing(site.run(prompt)) as events:
        return [event async for event in events]


async def test_a_drifted_switch_is_refused_by_its_field_with_a_hint(
    replica: ThreadedReplica, page: Page
) -> None:
    site = _site(replica)
    await site.open(page)
    with pytest.raises(UnsupportedSetting) as caught:
        await _answer(site, _prompt("replica-flash", web_search=True))
    assert caught.value.param == "web_search_options" and "selector" in caught.value.message
    # URL context did not drift: it is carried.
    events = await _answer(site, _prompt("replica-flash", url_context=True))
    assert replica.runs()[-1]["settings"]["url_context"] is True and events


async def test_a_switch_the_page_keeps_disabled_is_refused(replica: ThreadedReplica, page: Page) -> None:
    site = _site(replica)
    await site.open(page)
    await page.click('button[aria-label="Tools"]')  # the switches are in the collapsed Tools group
    await page.evaluate(
        "() => document.querySelector('[data-test-id=\"browseAsAToolTooltip\"] button').disabled = true"
    )
    with pytest.raises(NotSupported) as caught:
        await _answer(site, _prompt("replica-flash", url_context=True))  # the page's model: no reload
    assert caught.value.param == "url_context"


async def test_the_level_is_reported_then_put_back(replica: ThreadedReplica, page: Page) -> None:
    site = _site(replica)
    await site.open(page)
    events = await _answer(site, _prompt("replica-pro", reasoning_effort="low"))
    assert events[0] == SettingApplied("Thinking-Level", "low")
    assert replica.runs()[-1]["settings"]["thinking_level"] == "Low"
    events = await _answer(site, _prompt("replica-pro"))
    assert not any(isinstance(event, SettingApplied) for event in events)
    assert replica.runs()[-1]["settings"]["thinking_level"] == "High"
