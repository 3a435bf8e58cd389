"""The dashboard in a real Chromium, watched: what its console says, what it requests and
from where. Shared by tests/e2e/test_dashboard_browser.py and bench/dashboard_screenshot.py
(which takes the picture in docs/).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from playwright.sync_api import Browser, ConsoleMessage, Page, Request

from tests.support.coordinator import Coordinator
from tests.support.replica import PAGE_WAIT_MS

ADMIN_KEY = "dashboard-admin-key"


@dataclass
class Watched:
    """A dashboard page and everything that went wrong on it."""

    page: Page
    origin: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # requests to another origin
    failed: list[str] = field(default_factory=list)  # requests that got no answer
    urls: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.console_errors.append(f"{message.type}: {message.text}")

    def on_request(self, request: Request) -> None:
        self.urls.append(request.url)
        parts = urlsplit(request.url)
        if parts.scheme not in ("blob", "data") and f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign.append(request.url)

    def on_failed(self, request: Request) -> None:
        self.failed.append(f"{request.url}: {request.failure}")


def open_dashboard(browser: Browser, run: Coordinator, key: str | None = ADMIN_KEY) -> Watched:
    """The page at /dashboard, in a fresh context, with the admin key entered when given."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(PAGE_WAIT_MS)
    page = context.new_page()
    watched = Watched(page, run.url)
    page.on("console", watched.on_console)
    page.on("pageerror", lambda error: watched.page_errors.append(str(error)))
    page.on("request", watched.on_request)
    page.on("requestfailed", watched.on_failed)
    page.goto(run.url + "/dashboard")
    if key is not None:
        page.locator("#key-form").wait_for(state="visible")
        page.locator("#key").fill(key)
        page.locator("#key-form button[type=submit]").click()
        page.locator("#children tbody tr").first.wait_for()
    return watched
