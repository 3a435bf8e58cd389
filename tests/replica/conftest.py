"""Fixtures: replicas served in-process on free ports, and a headless Chromium to drive their
page; every replica, browser context and browser started here is stopped on teardown.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from child.replica import SESSION_COOKIE, ReplicaConfig
from tests.support.replica import (
    FAST,
    PAGE_WAIT_MS,
    SESSION,
    OpenPage,
    PageClient,
    StartReplica,
    ThreadedReplica,
    chromium,
)


@pytest.fixture
def start_replica() -> Iterator[StartReplica]:
    """start_replica(quota_after=2, ...) serves a replica that accepts SESSION; stopped at teardown.

    Pop-ups are off unless a test turns them on: they have tests of their own, and every
    other test would first have to dismiss them.
    """
    started: list[ThreadedReplica] = []

    def start(**overrides: Any) -> ThreadedReplica:
        settings: dict[str, Any] = {"sessions": frozenset({SESSION}), "popups": False, **FAST, **overrides}
        replica = ThreadedReplica(ReplicaConfig(**settings))
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.close()


@pytest.fixture
def replica(start_replica: StartReplica) -> ThreadedReplica:
    return start_replica()


@pytest.fixture
def page_client(replica: ThreadedReplica) -> Iterator[PageClient]:
    client = PageClient(replica)
    yield client
    client.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def open_page(browser: Browser) -> Iterator[OpenPage]:
    """open_page(replica, session=SESSION, path=...) -> a page on the replica's chat, in a
    fresh context that trusts the answer endpoint's certificate."""
    contexts = []
    errors: list[str] = []

    def open_(
        replica: ThreadedReplica, session: str | None = SESSION, path: str = "/prompts/new_chat"
    ) -> Page:
        # The replica's CA is not in Chromium's store; the driver's browser has the
        # capture's CA instead, so certificate errors are waved through here as there.
        context = browser.new_context(ignore_https_errors=True)
        context.set_default_timeout(PAGE_WAIT_MS)
        contexts.append(context)
        if session is not None:
            context.add_cookies([{"name": SESSION_COOKIE, "value": session, "url": replica.url}])
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(replica.url + path)
        return page

    yield open_
    for context in contexts:
        context.close()
    # An exception in the page's own script is a bug of the replica, whatever the test checked.
    assert errors == []
