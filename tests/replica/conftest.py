"""Fixtures: replicas served in-process on free ports, and a headless Chromium to drive their
page; every replica, browser context and browser started here is stopped on teardown.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from child.replica import SESSION_COOKIE, ReplicaConfig
from tests.support.replica import (
    CHROMIUM,
    CHROMIUM_ARGS,
    FAST,
    SESSION,
    OpenPage,
    StartReplica,
    ThreadedReplica,
)


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
