"""Web image URLs through a running coordinator (mock children): refused as unsupported
without `--fetch-image-urls`; with it, fetched only from public addresses, so a loopback
URL is refused naming the part before any child is involved."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.support.coordinator import Runs

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
B64 = base64.b64encode(PNG).decode()


@pytest.fixture
def image_server() -> Iterator[tuple[str, list[str]]]:
    """A real image on 127.0.0.1, and the paths asked of it (none may be)."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            self.wfile.write(PNG)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}/cat.png", asked
    server.shutdown()
    server.server_close()
    thread.join(5)


def question(url: str) -> list[ChatCompletionMessageParam]:
    content: Any = [{"type": "text", "text": "what is it"}, {"type": "image_url", "image_url": {"url": url}}]
    return [{"role": "user", "content": content}]


@pytest.mark.parametrize("flag", [None, "--fetch-image-urls"])
def test_a_loopback_image_url_is_refused_with_or_without_the_flag(
    runs: Runs, image_server: tuple[str, list[str]], flag: str | None
) -> None:
    url, asked = image_server
    run = runs.start(("alpha",), args=[flag] if flag else [])
    with pytest.raises(openai.BadRequestError) as refused:
        run.openai().chat.completions.create(model="mock", messages=question(url))
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["param"] == "messages[0].content[1].image_url.url"
    if flag:
        assert error["code"] == "invalid_image_url"
        assert "localhost is a loopback address; only public addresses are fetched" in error["message"]
    else:
        assert error["code"] == "unsupported_parameter"
        assert "--fetch-image-urls" in error["message"]
    assert asked == []  # never connected to
    # Images sent as data: URLs pass as ever (the mock child names the files it got).
    answer = run.openai().chat.completions.create(
        model="mock", messages=question(f"data:image/png;base64,{B64}")
    )
    assert "image-1.png (image/png, 72 bytes)" in (answer.choices[0].message.content or "")
