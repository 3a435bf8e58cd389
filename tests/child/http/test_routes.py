"""The child's routes in process (its real server on a real port, the mock engine, in a
thread of the test): the turn is always given back."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from child.engines.mock import MockEngine, MockSettings
from child.http import routes
from child.http.server import serve
from child.settings import ChildSettings
from coordinator.protocol.link import TOKEN_HEADER, AnswerEvent, Citation, Finish, SettingApplied, TextDelta
from tests.support.processes import free_port, wait_for

TOKEN = "t0ken"
ASK = {"messages": [{"role": "user", "content": "hello there"}]}


@contextmanager
def serving(tmp_path: Path, mock: MockSettings) -> Iterator[httpx.Client]:
    """The child's server and engine on a loop in a thread, and a client of it with the token."""
    port = free_port()
    settings = ChildSettings(
        profile_path=tmp_path / "alpha.json", engine="mock", api_port=port, stream_port=2, browser_port=3,
        token=TOKEN,
    )  # fmt: skip
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    exit_codes: list[int] = []
    thread = threading.Thread(
        target=lambda: exit_codes.append(loop.run_until_complete(serve(settings, MockEngine(mock), stop)))
    )
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={TOKEN_HEADER: TOKEN}) as client:
            wait_for(lambda: _answers(client), 30, "the child's server")
            yield client
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
    assert exit_codes == [0]


def _answers(client: httpx.Client) -> bool:
    try:
        client.get("/health")
    except httpx.TransportError:
        return False
    return True


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    with serving(tmp_path, MockSettings()) as client:
        wait_for(lambda: health(client)["status"] == "ready", 30, "the mock engine to start")
        yield client


def health(client: httpx.Client) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/health").json()
    return body


@pytest.mark.parametrize("stream", [False, True])
def test_a_failure_while_preparing_the_answer_never_keeps_the_turn(
    client: httpx.Client, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    # Whatever fails between reading the request and serving it (here: the prompt's word
    # count, which once raised on a null text part) must not leave the child busy for ever.
    def broken(messages: list[Any]) -> int:
        raise TypeError("a bug")

    monkeypatch.setattr(routes, "count_words", broken)
    assert client.post("/v1/chat/completions", json={**ASK, "stream": stream}).status_code == 500
    assert (health(client)["status"], health(client)["request_id"]) == ("ready", None)
    monkeypatch.undo()
    answer = client.post("/v1/chat/completions", json=ASK)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "echo: hello there"


@pytest.mark.parametrize("stream", [False, True])
def test_a_setting_the_page_used_is_a_header_and_citations_are_annotations(
    client: httpx.Client, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    async def generate(self: MockEngine, prompt: Any) -> AsyncGenerator[AnswerEvent, None]:
        yield SettingApplied("Thinking-Level", "low")
        yield TextDelta("cited")
        yield Citation("https://a.test/", "A", 0, 5)
        yield Finish()

    monkeypatch.setattr(MockEngine, "generate", generate)
    answer = client.post("/v1/chat/completions", json={**ASK, "stream": stream})
    assert answer.status_code == 200 and answer.headers["x-coordinator-thinking-level"] == "low"
    cited = {"start_index": 0, "end_index": 5, "title": "A", "url": "https://a.test/"}
    annotation = {"type": "url_citation", "url_citation": cited}
    if stream:
        assert f'"annotations":[{json.dumps(annotation, separators=(",", ":"))}]' in answer.text
        assert "Thinking-Level" not in answer.text
    else:
        assert answer.json()["choices"][0]["message"]["annotations"] == [annotation]


def test_the_screenshot_is_the_engines_png_behind_the_token(client: httpx.Client) -> None:
    shot = client.get("/screenshot")
    assert shot.status_code == 200
    assert shot.headers["content-type"] == "image/png"
    assert shot.headers["cache-control"] == "no-store"
    assert shot.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert client.get("/screenshot", headers={TOKEN_HEADER: "wrong"}).status_code == 403


def test_no_screenshot_while_the_engine_starts(tmp_path: Path) -> None:
    with serving(tmp_path, MockSettings(startup_ms=60_000)) as starting:
        refused = starting.get("/screenshot")
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "starting"
