"""Keys and request ids against a real coordinator: ids cannot be guessed, only the key that
made a request (or an admin key) cancels it, unsafe ids are refused, admin keys guard /admin,
and a key on the command line is warned about (issue 10, items 6 and 7)."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psutil
import pytest

from tests.support.coordinator import Coordinator, Runs
from tests.support.processes import wait_for

ALICE, BOB, ADMIN = "client-key-alice-1f3c", "client-key-bob-92ad", "admin-key-7e0b"
# Eight words at 150 ms each: a stream runs for over a second, long enough to try to cancel it.
WORDS = "one two three four five six seven eight"
ASK = {"model": "mock", "messages": [{"role": "user", "content": WORDS}], "stream": True}


def key(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def run(module_runs: Runs) -> Coordinator:
    # Client keys on the command line (warned about), the admin key from the environment (not).
    return module_runs.start(
        ("a", "b"),
        env={"MOCK_TOKEN_MS": "150", "COORDINATOR_ADMIN_KEY": ADMIN},
        args=["--api-key", f"{ALICE},{BOB}"],
        api_key=ADMIN,  # the helper's own calls (/admin/children) use the admin key
    )


@contextmanager
def streaming(run: Coordinator, owner: str, request_id: str | None = None) -> Iterator[tuple[str, Any]]:
    """A running stream of `owner`'s: its id, and an iterator over its `data:` lines, once
    the first chunk has arrived (so the request is on a child)."""
    headers = key(owner) | ({"X-Request-ID": request_id} if request_id else {})
    with httpx.stream(
        "POST", f"{run.url}/v1/chat/completions", json=ASK, headers=headers, timeout=30
    ) as answer:
        assert answer.status_code == 200
        lines = (line for line in answer.iter_lines() if line.startswith("data: "))
        first = next(lines)
        assert json.loads(first[6:])["object"] == "chat.completion.chunk"
        yield answer.headers["x-request-id"], itertools.chain([first], lines)


def rest(lines: Any) -> tuple[str, list[str]]:
    """The text of the chunks, and the `data:` payloads that were no chunk."""
    text, other = "", []
    for line in lines:
        payload = line[6:]
        event = None if payload == "[DONE]" else json.loads(payload)
        if event is not None and "choices" in event:
            text += event["choices"][0]["delta"].get("content") or ""
        else:
            other.append(payload)
    return text, other


def no_child_busy(run: Coordinator) -> None:
    wait_for(lambda: all(c["state"] == "ready" for c in run.children().values()), 30, "both children free")


# -- item 6: request ids ------------------------------------------------------------------


def test_generated_ids_share_nothing_but_req_and_follow_no_sequence(run: Coordinator) -> None:
    with httpx.Client(base_url=run.url, headers=key(ALICE), timeout=10) as client:
        ids = [client.get("/v1/models").headers["x-request-id"] for _ in range(200)]

    assert len(set(ids)) == 200
    assert all(re.fullmatch(r"req_[0-9a-f]{24}", made) for made in ids)
    assert len({made[:5] for made in ids}) > 1  # no common prefix past `req_`
    numbers = [int(made[4:], 16) for made in ids]
    # A counter (even behind a random prefix) moves by small steps; random ids jump anywhere.
    assert min(abs(later - earlier) for earlier, later in itertools.pairwise(numbers)) > 2**32


def test_another_key_cannot_cancel_a_running_stream_and_it_completes(run: Coordinator) -> None:
    with streaming(run, ALICE) as (request_id, lines):
        foreign = run.post(f"/v1/cancel/{request_id}", headers=key(BOB))
        unknown = run.post("/v1/cancel/req_000000000000000000000000", headers=key(BOB))
        text, other = rest(lines)

    # Answered exactly as an id that does not exist, so ids cannot be probed.
    assert foreign.status_code == unknown.status_code == 404
    refused, missing = foreign.json()["error"], unknown.json()["error"]
    assert refused["code"] == missing["code"] == "request_not_found"
    assert refused["message"].replace(request_id, "ID") == missing["message"].replace(
        "req_000000000000000000000000", "ID"
    )
    assert text.split() == ["echo:", *WORDS.split()] and other == ["[DONE]"]
    # The log says which key tried, by its label, never the key itself.
    attempt = wait_for(
        lambda: [e for e in run.events("request") if e["path"] == f"/v1/cancel/{request_id}"], 30, "the log"
    )
    assert attempt[0]["key"] == "client-1" and attempt[0]["status"] == 404
    assert BOB not in run.output()


@pytest.mark.parametrize("canceller", [ALICE, ADMIN], ids=["owner", "admin"])
def test_the_owner_or_an_admin_key_cancels_it(run: Coordinator, canceller: str) -> None:
    with streaming(run, ALICE, request_id=f"mine.{len(canceller)}:x") as (request_id, lines):
        cancelled = run.post(f"/v1/cancel/{request_id}", headers=key(canceller))
        text, other = rest(lines)

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["cancelled"] is True and cancelled.json()["where"] == "child"
    assert "[DONE]" not in other and json.loads(other[-1])["error"]["code"] == "request_cancelled"
    assert len(text.split()) < len(WORDS.split())
    no_child_busy(run)


@pytest.mark.parametrize("bad", ["has space", "what?x=1", "100%25", "a/b", "semi;colon", "x" * 129])
def test_an_unsafe_request_id_is_refused_before_any_child(run: Coordinator, bad: str) -> None:
    body = {**ASK, "stream": False}
    served = sum(child["served"] for child in run.children().values())
    answer = run.post("/v1/chat/completions", json=body, headers={**key(ALICE), "X-Request-ID": bad})

    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_request_id" and error["param"] is None
    assert "X-Request-ID" in error["message"] and "A-Z a-z 0-9 - _ . :" in error["message"]
    assert answer.headers["x-request-id"].startswith("req_")
    assert sum(child["served"] for child in run.children().values()) == served


def test_a_safe_client_id_is_kept_and_names_the_completion(run: Coordinator) -> None:
    body = {**ASK, "stream": False}
    answer = run.post(
        "/v1/chat/completions", json=body, headers={**key(ALICE), "X-Request-ID": "trace:7.a-b_c"}
    )

    assert answer.status_code == 200
    assert answer.headers["x-request-id"] == "trace:7.a-b_c"
    assert answer.json()["id"] == "chatcmpl-trace:7.a-b_c"


# -- item 7: admin keys and keys on the command line ----------------------------------------


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/admin/children"), ("POST", "/admin/children/a/drain")]
)
def test_a_client_key_is_refused_on_admin(run: Coordinator, method: str, path: str) -> None:
    answer = httpx.request(method, run.url + path, headers=key(ALICE), timeout=10)

    assert answer.status_code == 403
    error = answer.json()["error"]
    assert error["code"] == "permission_denied" and error["type"] == "permission_error"
    assert "admin key" in error["message"]
    assert run.child("a")["state"] == "ready"  # the drain did not happen
    logged = wait_for(
        lambda: [e for e in run.events("request") if e["path"] == path and e["status"] == 403], 30, "the log"
    )
    assert logged[-1]["key"] == "client-0"


def test_the_admin_key_reaches_admin_and_v1(run: Coordinator) -> None:
    listing = httpx.get(f"{run.url}/admin/children", headers=key(ADMIN), timeout=10)
    assert listing.status_code == 200 and {c["id"] for c in listing.json()["data"]} == {"a", "b"}
    answer = run.openai(api_key=ADMIN).chat.completions.create(
        model="mock", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content == "echo: hi"


def test_a_client_key_still_reaches_v1_and_no_key_reaches_nothing(run: Coordinator) -> None:
    assert httpx.get(f"{run.url}/v1/models", headers=key(BOB), timeout=10).status_code == 200
    for path in ("/v1/models", "/admin/children"):
        refused = httpx.get(run.url + path, timeout=10)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"


def test_status_command_uses_the_admin_key(run: Coordinator) -> None:
    clean = {name: value for name, value in os.environ.items() if not name.startswith("COORDINATOR_")}
    command = [sys.executable, "-m", "coordinator", "status", "--url", run.url, "--json"]

    def status(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, capture_output=True, text=True, timeout=60, env={**clean, **env})

    with_admin = status(COORDINATOR_API_KEY=ALICE, COORDINATOR_ADMIN_KEY=ADMIN)
    assert with_admin.returncode == 0, with_admin.stderr
    assert {child["id"] for child in json.loads(with_admin.stdout)["data"]} == {"a", "b"}
    client_only = status(COORDINATOR_API_KEY=ALICE)
    assert client_only.returncode == 1 and "--admin-key" in client_only.stderr
    assert ALICE not in client_only.stderr


def test_a_key_on_the_command_line_is_warned_about_once_and_never_logged(run: Coordinator) -> None:
    warnings = run.events("api_key_on_command_line")

    assert [warning["flag"] for warning in warnings] == ["--api-key"]  # not the admin key, from env
    assert "--api-key-file" in warnings[0]["hint"] and "COORDINATOR_API_KEY" in warnings[0]["hint"]
    output = run.output()
    for secret in (ALICE, BOB, ADMIN):
        assert secret not in output


def test_children_get_no_key(run: Coordinator) -> None:
    for child in run.children().values():
        environ = psutil.Process(child["pid"]).environ()
        assert "COORDINATOR_ADMIN_KEY" not in environ and "COORDINATOR_API_KEY" not in environ
        assert not {ALICE, BOB, ADMIN} & set(environ.values())
