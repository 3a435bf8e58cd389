"""A replica served in-process on free ports, in an event loop on a thread of its own, so
that both plain (sync) tests and Playwright's sync API can talk to it; and a client that
speaks for a page load, for tests of the answer endpoint without a browser."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
import shutil
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from child.engines.browser import launch_args
from child.replica import GENERATE_PATH, SESSION_COOKIE, ReplicaConfig, ReplicaServer
from child.replica.api import PAGE_HEADER, PROOF_HEADER
from child.replica.wire import GenerateRequest, Turn, encode_request
from tests.support.processes import wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = launch_args()
# How long a test's page waits for an element or a condition. Playwright's 5 s is short when
# the suite's other workers load the machine; a page that is on time costs no more.
PAGE_WAIT_MS = 30_000


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, launched as the children launch it; the test is skipped
    where it is not installed."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    expect.set_options(timeout=PAGE_WAIT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


SESSION = "test-session"
# Fast enough to keep the suite short, slow enough that a page shows several partial texts.
FAST = {"first_token_ms": 40, "token_ms": 15}
BOOT = re.compile(r"const BOOT = (\{.*?\});\n")


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
        self.api_url = self.server.api_url
        self.ca_file: Path = self.server.ca_file
        self.http = httpx.Client(base_url=self.url, timeout=5.0)

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=15)

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts the replica's CA, and only it."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def runs(self) -> list[dict[str, Any]]:
        response = self.http.get("/__replica/runs")
        response.raise_for_status()
        runs: list[dict[str, Any]] = response.json()
        return runs

    def wait_run(
        self, index: int, status: str, timeout: float = 30.0, reported: bool = True
    ) -> dict[str, Any]:
        """Run `index` once it has `status` (and, by default, the page's report of its text)."""

        def reached() -> dict[str, Any] | None:
            runs = self.runs()
            if len(runs) <= index:
                return None
            run = runs[index]
            return run if run["status"] == status and (run["reported"] or not reported) else None

        run: dict[str, Any] = wait_for(reached, timeout, f"run {index} to be {status}")
        return run

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


class Origins(Protocol):
    """Where a replica's page and answers are, and how to trust the answers."""

    @property
    def url(self) -> str: ...

    @property
    def api_url(self) -> str: ...

    def ssl_context(self) -> ssl.SSLContext: ...


@dataclass(frozen=True)
class RemoteReplica:
    """A replica started as a command (`python -m child.replica`), known by its addresses."""

    url: str
    api_url: str
    ca_file: Path

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


class PageClient:
    """Speaks to the answer endpoint as one load of the chat page would: with its page id,
    and a proof made from the secret the page's script was given."""

    def __init__(self, replica: Origins, session: str = SESSION) -> None:
        page = httpx.get(replica.url + "/prompts/new_chat", cookies={SESSION_COOKIE: session}, timeout=5.0)
        page.raise_for_status()
        match = BOOT.search(page.text)
        assert match, "the chat page carries no boot data"
        self.boot: dict[str, Any] = json.loads(match.group(1))
        self.page_origin = replica.url
        self.api = httpx.Client(base_url=replica.api_url, verify=replica.ssl_context(), timeout=10.0)

    def request(self, prompt: str = "hello", model: str = "replica-flash", **fields: Any) -> GenerateRequest:
        base = GenerateRequest(
            model=model,
            turns=(Turn("user", prompt),),
            system="",
            stop=(),
            max_tokens=None,
            temperature=1.0,
            top_p=0.95,
            nonce=secrets.token_hex(16),
            temporary=False,
        )
        return replace(base, **fields)

    def headers(self, body: bytes, proof: str | None = None, gzip: bool = False) -> dict[str, str]:
        made = hashlib.sha256(self.boot["proofKey"].encode() + body).hexdigest()
        return {
            "Content-Type": "application/json+protobuf",
            "Origin": self.page_origin,
            PAGE_HEADER: self.boot["pageId"],
            PROOF_HEADER: made if proof is None else proof,
            "Accept-Encoding": "gzip" if gzip else "identity",
        }

    def post(self, request: GenerateRequest, proof: str | None = None, gzip: bool = False) -> httpx.Response:
        body = encode_request(request)
        return self.api.post(GENERATE_PATH, content=body, headers=self.headers(body, proof, gzip))

    def stream(self, request: GenerateRequest, gzip: bool = False) -> Any:
        """`with client.stream(request) as response:` the raw answer, chunk by chunk."""
        body = encode_request(request)
        return self.api.stream("POST", GENERATE_PATH, content=body, headers=self.headers(body, gzip=gzip))

    def close(self) -> None:
        self.api.close()


StartReplica = Callable[..., ThreadedReplica]
OpenPage = Callable[..., Page]

# Shown only for a model with thinking levels, once the page has its list of models.
LEVEL_SELECT = 'mat-select[aria-label="Thinking Level"]'


def models_listed(page: Page) -> None:
    """Wait for the page's model list (the default model, flash, has levels): until it
    arrives the page knows no level or tool of its model, and its arrival redraws the run
    settings with the model's defaults. A driver waits for it too; a loaded machine can
    take seconds."""
    expect(page.locator(LEVEL_SELECT)).to_have_count(1)
