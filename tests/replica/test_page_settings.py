"""The replica's thinking level and tools in a real headless Chromium: the select whose
options exist only while open and differ by model, the switches, what the page sends, and
that New chat keeps them (as AI Studio does), so a driver must put them back itself."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.replica import contract as ui
from tests.support.replica import LEVEL_SELECT, OpenPage, ThreadedReplica, models_listed

pytestmark = pytest.mark.browser

TOOLS_GROUP = 'button[aria-label="Tools"]'
FUNCTION_CALLING = 'div[data-test-id="functionCallingTooltip"] button[role="switch"]'
OPTION = '[role="listbox"] mat-option'
SEARCH = 'div[data-test-id="searchAsAToolTooltip"] mat-slide-toggle button'
URL_CONTEXT = 'div[data-test-id="browseAsAToolTooltip"] button'


def submit(page: Page, prompt: str) -> None:
    page.locator(ui.PROMPT).fill(prompt)
    page.locator(ui.PROMPT).press("Control+Enter")


def test_levels_differ_by_model_and_exist_only_while_open(
    replica: ThreadedReplica, open_page: OpenPage
) -> None:
    expected = {"replica-flash": ["Minimal", "Low", "Medium", "High"], "replica-pro": ["Low", "High"]}
    for model, levels in expected.items():
        page = open_page(replica, path=f"/prompts/new_chat?model={model}")
        select = page.locator(LEVEL_SELECT)
        expect(select).to_contain_text(replica.config.default_level(model) or "")
        expect(page.locator(OPTION)).to_have_count(0)
        select.click()
        expect(page.locator(OPTION)).to_have_text(levels)
        page.locator(OPTION).filter(has_text="Low").click()
        expect(page.locator(OPTION)).to_have_count(0)
        expect(select).to_contain_text("Low")
    lite = open_page(replica, path="/prompts/new_chat?model=replica-lite")
    expect(lite.locator(ui.MODEL_LABEL)).to_have_text("replica-lite")
    expect(lite.locator(LEVEL_SELECT)).to_have_count(0)
    lite.locator(TOOLS_GROUP).click()
    expect(lite.locator(TOOLS_GROUP)).to_have_attribute("aria-expanded", "true")
    expect(lite.locator(SEARCH)).to_have_count(0)


def test_the_page_sends_the_level_and_tools_and_keeps_them_after_new_chat(
    replica: ThreadedReplica, open_page: OpenPage
) -> None:
    page = open_page(replica, path="/prompts/new_chat?model=replica-flash")
    models_listed(page)
    page.locator(LEVEL_SELECT).click()
    page.locator(OPTION).filter(has_text="Medium").click()
    # As on the page, the switches are in the Tools group, collapsed until opened.
    expect(page.locator(SEARCH)).to_have_count(0)
    page.locator(TOOLS_GROUP).click()
    for switch in (SEARCH, URL_CONTEXT):
        expect(page.locator(switch)).to_have_attribute("aria-checked", "false")
        page.locator(switch).click()
        expect(page.locator(switch)).to_have_attribute("aria-checked", "true")
    submit(page, "read https://a.test/page")
    run = replica.wait_run(0, "completed")
    assert (run["settings"]["thinking_level"], run["settings"]["search"], run["settings"]["url_context"]) == (
        "Medium",
        True,
        True,
    )
    assert run["thoughts"] and [s["url"] for s in run["sources"]][-1] == "https://a.test/page"
    page.locator(ui.NEW_CHAT).click()
    page.locator(ui.DISCARD).click()
    expect(page.locator(LEVEL_SELECT)).to_contain_text("Medium")
    expect(page.locator(SEARCH)).to_have_attribute("aria-checked", "true")


def test_google_search_is_off_and_disabled_while_function_calling_is_on(
    replica: ThreadedReplica, open_page: OpenPage
) -> None:
    page = open_page(replica, path="/prompts/new_chat?model=replica-flash")
    models_listed(page)
    page.locator(TOOLS_GROUP).click()
    page.locator(SEARCH).click()
    expect(page.locator(SEARCH)).to_have_attribute("aria-checked", "true")
    page.locator(FUNCTION_CALLING).click()
    expect(page.locator(SEARCH)).to_have_attribute("aria-checked", "false")
    expect(page.locator(SEARCH)).to_be_disabled()
    page.locator(FUNCTION_CALLING).click()
    expect(page.locator(SEARCH)).to_be_enabled()
