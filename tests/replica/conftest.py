"""Replicas served in-process on free ports, and a headless Chromium to drive their page.

Each replica runs in an event loop on a thread of its own, so that both plain (sync)
tests and Playwright's sync API can talk to it; every replica, browser context and
browser started here is stopped on teardown.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from child.engines.browser import launch_args
from child.replica import SESSION_COOKIE, ReplicaConfig, ReplicaServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = launch_args()
SESSION = "test-session"
# Fast enough to keep the suite short, slow enough that a page shows several partial texts.
FAST = {"first_token_ms": 40, "token_ms": 15}


class ThreadedReplica:
    """A `ReplicaServer` in its own event loop thread, with sync helpers for tests."""

    def __init__(self, config: ReplicaConfig) -> None:
        self.config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="replica-loop", daemon=True)
        self._thread.start()
        self.server = ReplicaServer(config)
        try:
            self._call(self.server.start())
        except BaseException:
            self._close_loop()
            raise
        self.url = self.server.url
        self.http = httpx.Client(base_url=self.url, timeout=5.0)

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=15)

    def runs(self) -> list[dict[str, Any]]:
        response = self.http.get("/__replica/runs")
        response.raise_for_status()
        runs: list[dict[str, Any]] = response.json()
        return runs

    def close(self) -> None:
        self.http.close()
        try:
            self._call(self.server.stop())
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


StartReplica = Callable[..., ThreadedReplica]


@pytest.fixture
def start_replica() -> Iterator[StartReplica]:
    """start_replica(quota_after=2, ...) serves a replica that accepts SESSION; stopped at teardown."""
    started: list[ThreadedReplica] = []

    def start(**overrides: Any) -> ThreadedReplica:
        settings: dict[str, Any] = {"sessions": frozenset({SESSION}), **FAST, **overrides}
        replica = ThreadedReplica(ReplicaConfig(**settings))
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.close()


@pytest.fixture
def replica(start_replica: StartReplica) -> ThreadedReplica:
    return start_replica()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


OpenPage = Callable[..., Page]


@pytest.fixture
def open_page(browser: Browser) -> Iterator[OpenPage]:
    """open_page(replica, session=SESSION) -> a page on the replica's chat, in a fresh context."""
    contexts = []

    def open_(replica: ThreadedReplica, session: str | None = SESSION) -> Page:
        context = browser.new_context()
        context.set_default_timeout(5_000)
        contexts.append(context)
        if session is not None:
            context.add_cookies([{"name": SESSION_COOKIE, "value": session, "url": replica.url}])
        page = context.new_page()
        page.goto(replica.url + "/prompts/new_chat")
        return page

    yield open_
    for context in contexts:
        context.close()
