"""The dashboard in a real headless Chromium against a coordinator with mock children and an
admin key: the key is asked for and kept in the tab, every child shows with its state and
follows a change, the usage charts and a screenshot are drawn, restart and drain work, and
the page's console stays clean and it asks nothing of any other origin.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.support.coordinator import Coordinator, Runs, StartCoordinator
from tests.support.dashboard import ADMIN_KEY, open_dashboard
from tests.support.processes import wait_for
from tests.support.replica import chromium

pytestmark = pytest.mark.browser

ASK = {"model": "mock", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def run(module_runs: Runs) -> Coordinator:
    # A slow start keeps a restarted child out of `ready` long enough to be seen doing it.
    env = {"COORDINATOR_ADMIN_KEY": ADMIN_KEY, "MOCK_STARTUP_MS": "1500"}
    started = module_runs.start(("alpha", "beta", "gamma"), env=env, api_key=ADMIN_KEY)
    for _ in range(4):
        assert started.post("/v1/chat/completions", json=ASK).status_code == 200
    wait_for(
        lambda: started.get("/admin/usage", params={"group_by": "profile,day"}).json()["data"],
        30,
        "the ledger's first rows",
    )
    return started


def test_the_dashboard_shows_and_drives_the_children(run: Coordinator, browser: Browser) -> None:
    watched = open_dashboard(browser, run)
    page = watched.page
    rows = page.locator("#children tbody tr")
    expect(rows).to_have_count(3)
    for child in ("alpha", "beta", "gamma"):
        row = page.locator(f'#children tr[data-child="{child}"]')
        expect(row.locator("td").first).to_have_text(child)
        expect(row.locator(".badge")).to_have_text("ready")
    expect(page.locator("#status")).to_have_text("ready")
    expect(page.locator("#queue tbody tr")).to_have_count(3)  # a row per lane

    # The usage charts are SVG drawn from /admin/usage.
    expect(page.locator("#usage-days svg rect.bar").first).to_be_visible()
    expect(page.locator("#usage-profiles svg rect.bar").first).to_be_visible()
    expect(page.locator("#usage-days svg title").first).to_have_text(
        re.compile(r"^\w+, \d{4}-\d\d-\d\d: \d+ requests$")
    )

    # The first child's screenshot, fetched with the key and shown from a blob: URL.
    page.wait_for_function("() => { const i = document.getElementById('shot'); "
                           "return !i.hidden && i.complete && i.naturalWidth > 0; }")  # fmt: skip
    expect(page.locator("#shot")).to_have_attribute("src", re.compile("^blob:"))

    # A refresh keeps the rows' buttons: a click that straddles one still lands.
    button = page.locator('#children tr[data-child="alpha"] button[data-action="restart"]').element_handle()
    for _ in range(2):
        with page.expect_response(lambda response: response.url.endswith("/admin/children")):
            pass
    assert button.evaluate("b => b.isConnected")

    # Restart beta: the table follows it out of ready and back, one restart more.
    beta = page.locator('#children tr[data-child="beta"]')
    beta.locator('button[data-action="restart"]').click()
    expect(beta).not_to_have_attribute("data-state", "ready", timeout=5_000)
    expect(beta).to_have_attribute("data-state", "ready", timeout=20_000)
    expect(beta.locator("td").nth(5)).to_have_text("1")
    assert run.child("beta")["restarts"] == 1

    # Show beta's page now that it is back.
    beta.locator('button[data-action="show"]').click()
    expect(page.locator("#shot-child")).to_have_text("beta")
    expect(page.locator("#shot")).to_have_attribute("alt", "The page of beta")

    # Drain gamma: it stops, and stays stopped.
    gamma = page.locator('#children tr[data-child="gamma"]')
    gamma.locator('button[data-action="drain"]').click()
    expect(gamma).to_have_attribute("data-state", "stopped", timeout=15_000)
    assert run.child("gamma")["state"] == "stopped"

    # The key went out in headers only, and stays in this tab's sessionStorage.
    assert page.evaluate("() => sessionStorage.getItem('coordinator.dashboard.key')") == ADMIN_KEY
    assert not [url for url in watched.urls if ADMIN_KEY in url]
    assert watched.console_errors == []
    assert watched.page_errors == []
    assert watched.foreign == []
    assert watched.failed == []
    page.context.close()


def test_a_wrong_key_is_refused_and_asked_again(run: Coordinator, browser: Browser) -> None:
    watched = open_dashboard(browser, run, key=None)
    page = watched.page
    expect(page.locator("#key-form")).to_be_visible()
    expect(page.locator("#panels")).to_be_hidden()
    page.locator("#key").fill("not-the-key")
    page.locator("#key-form button[type=submit]").click()
    expect(page.locator("#message")).to_have_text("The key was refused.")
    expect(page.locator("#key-form")).to_be_visible()
    assert page.evaluate("() => sessionStorage.getItem('coordinator.dashboard.key')") is None
    # The refusal is the one error in the console: which shows the watch sees a failed fetch.
    assert [error for error in watched.console_errors if "401" not in error] == []
    assert len(watched.console_errors) == 1
    assert watched.page_errors == [] and watched.foreign == []
    page.context.close()


def test_the_quota_table_shows_the_quota_view(run: Coordinator, browser: Browser) -> None:
    for _ in range(3):
        assert run.post("/v1/chat/completions", json=ASK).status_code == 200
    view = run.get("/admin/usage/quota").json()
    watched = open_dashboard(browser, run, key=ADMIN_KEY)
    page = watched.page
    expect(page.locator("#quota-section")).to_be_visible()
    rows = page.locator("#quota tbody tr")
    expect(rows).to_have_count(len(view["rows"]))
    for index, row in enumerate(view["rows"]):  # no request since: the same counts
        cells = rows.nth(index).locator("td")
        expect(cells.nth(0)).to_have_text(row["profile"])
        expect(cells.nth(1)).to_have_text(row["model"])
        expect(cells.nth(2)).to_have_text(str(row["requests"]))
    assert sum(row["requests"] for row in view["rows"]) >= 3
    expect(page.locator("#quota-day")).to_contain_text("America/Los_Angeles")
    assert watched.console_errors == [] and watched.page_errors == []
    page.context.close()


def test_without_keys_no_key_is_asked(start_coordinator: StartCoordinator, browser: Browser) -> None:
    open_run = start_coordinator(("solo",))
    watched = open_dashboard(browser, open_run, key=None)
    page = watched.page
    expect(page.locator('#children tr[data-child="solo"] .badge')).to_have_text("ready")
    expect(page.locator("#key-form")).to_be_hidden()
    expect(page.locator("#forget-key")).to_be_hidden()
    page.wait_for_function("() => document.getElementById('shot').naturalWidth > 0")
    assert watched.console_errors == [] and watched.page_errors == []
    assert watched.foreign == [] and watched.failed == []
    page.context.close()
