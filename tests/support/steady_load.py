"""A steady load of concurrent clients, each sending one chat request after another, half of
them streaming, with every request's fate recorded: when it was sent, when its headers and
its end came, which child served it (X-Coordinator-Child), and whether its answer was whole.

For the multi-host test and benchmark (tests/support/hosts.py): after a fault, the records
say which requests were lost and which were served, and by whom.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

# A new connection to HAProxy per request: on a kept-alive connection, HAProxy was seen to
# close some requests (after the first) that their dead server dropped silently, with no
# 502 nor log line, as it does to let a browser retry; the test wants each loss logged.
NEW_CONNECTIONS = httpx.Limits(max_keepalive_connections=0)
WORDS = "one two three four five six seven eight"
EXPECTED = f"echo: {WORDS}"


@dataclass
class Outcome:
    """One request: times are wall-clock seconds (time.time())."""

    request_id: str
    stream: bool
    sent: float
    client: int = 0  # which of the load's clients sent it, one request after another
    headers_at: float | None = None
    ended: float = 0.0
    status: int | None = None
    child: str | None = None
    ok: bool = False
    started_answer: bool = False  # a stream whose first chunk came
    error: str = ""


class SteadyLoad:
    """`clients` threads sending requests to `url` until `stop`."""

    def __init__(self, url: str, clients: int, prefix: str = "r", timeout: float = 60) -> None:
        self.url = url
        self.clients = clients
        self.prefix = prefix
        self.timeout = timeout
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sequence = 0

    def start(self) -> None:
        for k in range(self.clients):
            thread = threading.Thread(target=self._client, args=(k,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30) -> None:
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in self._threads):
            raise AssertionError("a load client did not finish its last request in time")

    def done(self, since: float = 0.0) -> list[Outcome]:
        """The requests finished so far, of those sent at `since` or later."""
        with self._lock:
            return [o for o in self.outcomes if o.sent >= since]

    def count_after(self, moment: float, **match: Any) -> int:
        return sum(
            1
            for o in self.done()
            if o.sent >= moment and all(getattr(o, name) == value for name, value in match.items())
        )

    def _next_id(self) -> str:
        with self._lock:
            self._sequence += 1
            return f"{self.prefix}{self._sequence:05d}"

    def _client(self, k: int) -> None:
        with httpx.Client(timeout=self.timeout, limits=NEW_CONNECTIONS) as client:
            while not self._stopping.is_set():
                outcome = one_request(client, self.url, self._next_id(), stream=k % 2 == 0)
                outcome.client = k
                with self._lock:
                    self.outcomes.append(outcome)


def one_request(client: httpx.Client, url: str, request_id: str, stream: bool, words: str = WORDS) -> Outcome:
    body = {"model": "mock", "stream": stream, "messages": [{"role": "user", "content": words}]}
    outcome = Outcome(request_id, stream, time.time())
    expected = f"echo: {words}"
    try:
        with client.stream(
            "POST", url + "/v1/chat/completions", json=body, headers={"X-Request-ID": request_id}
        ) as response:
            outcome.headers_at = time.time()
            outcome.status = response.status_code
            outcome.child = response.headers.get("x-coordinator-child")
            if response.status_code != 200:
                outcome.error = f"status {response.status_code}: {response.read()[:300]!r}"
            elif stream:
                outcome.ok, outcome.error = _read_stream(response, outcome, expected)
            else:
                text = json.loads(response.read())["choices"][0]["message"]["content"]
                outcome.ok = text == expected
                outcome.error = "" if outcome.ok else f"answer {text!r}"
    except httpx.HTTPError as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
    outcome.ended = time.time()
    return outcome


def _read_stream(response: httpx.Response, outcome: Outcome, expected: str) -> tuple[bool, str]:
    text = ""
    for line in response.iter_lines():
        if not line.startswith("data: "):
            continue
        data = line[len("data: ") :]
        if data == "[DONE]":
            return text == expected, "" if text == expected else f"answer {text!r}"
        event = json.loads(data)
        if "error" in event:
            return False, f"error event: {event['error'].get('code') or event['error'].get('message')}"
        outcome.started_answer = True
        for choice in event.get("choices", []):
            text += choice.get("delta", {}).get("content") or ""
    return False, "stream ended without [DONE]"
