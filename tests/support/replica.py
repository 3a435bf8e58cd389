"""A replica served in-process on a free port, in an event loop on a thread of its own, so
that both plain (sync) tests and Playwright's sync API can talk to it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Page

from child.engines.browser import launch_args
from child.replica import ReplicaConfig, ReplicaServer

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
OpenPage = Callable[..., Page]
