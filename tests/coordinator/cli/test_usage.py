"""`coordinator usage` without a coordinator: its table, and what it says when the answer is wrong."""

from __future__ import annotations

import httpx
import pytest

from coordinator.cli.status import StatusError
from coordinator.cli.usage import fetch, render

REPORT = {
    "object": "usage_report",
    "group_by": "model",
    "data": [
        {"group": "mock", "requests": 3, "errors": 1, "prompt_tokens": 21, "completion_tokens": 15,
         "reasoning_tokens": 0, "ttft_p50_ms": 12.3456, "duration_avg_ms": None},
    ],
}  # fmt: skip


def answering(status: int, body: object) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/admin/usage" and request.url.params["group_by"] == "model"
        assert request.headers["authorization"] == "Bearer k"
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handler)


def test_fetch_and_render_a_table() -> None:
    found = fetch("http://x", "k", {"group_by": "model"}, transport=answering(200, REPORT))
    title, _, header, line = render(found).splitlines()
    assert title == "usage by model"
    assert header.split()[:3] == ["GROUP", "REQUESTS", "ERRORS"]
    assert line.split() == ["mock", "3", "1", "21", "15", "0", "12.3", "-"]


def test_empty_report() -> None:
    assert render({"group_by": "day", "data": []}) == "usage by day: no requests"


@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        (401, {"error": {"message": "no"}}, "refused the key"),
        (400, {"error": {"message": "group_by must be one of"}}, "answered 400: group_by must be one of"),
        (200, {"status": "ready"}, "not a usage report"),
    ],
)
def test_wrong_answers_say_what_went_wrong(status: int, body: object, says: str) -> None:
    with pytest.raises(StatusError) as raised:
        fetch("http://x", "k", {"group_by": "model"}, transport=answering(status, body))
    assert says in raised.value.message
