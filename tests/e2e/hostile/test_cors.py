"""Browser front ends (issue 10, item 10): with --cors-origins, a chat page of an allowed
origin can call the API; preflights need no key; other origins get nothing to read."""

from __future__ import annotations

import httpx
import pytest

from tests.support.coordinator import Coordinator, Runs

KEY = "cors-suite-key"
PAGE = "http://chat.example:3000"
ASK = {"model": "mock", "messages": [{"role": "user", "content": "from a page"}]}


@pytest.fixture(scope="module")
def run(module_runs: Runs) -> Coordinator:
    return module_runs.start(
        ("c1",), env={"COORDINATOR_API_KEY": KEY}, args=["--cors-origins", PAGE], api_key=KEY
    )


def preflight(run: Coordinator, origin: str, method: str = "POST") -> httpx.Response:
    return httpx.options(
        run.url + "/v1/chat/completions",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os",
        },
        timeout=10,
    )


def test_a_preflight_from_an_allowed_origin_needs_no_key(run: Coordinator) -> None:
    response = preflight(run, PAGE)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == PAGE
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"]
    assert "authorization" in allowed and "x-stainless-os" in allowed
    assert response.headers["vary"].lower() == "origin"


def test_other_origins_are_refused(run: Coordinator) -> None:
    response = preflight(run, "https://evil.example")
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers
    answer = run.post("/v1/chat/completions", json=ASK, headers={"Origin": "https://evil.example", **_key()})
    assert answer.status_code == 200  # not a browser's business here: the page just cannot read it
    assert "access-control-allow-origin" not in answer.headers


def test_answers_to_the_page_carry_the_headers_whole_streamed_and_refused(run: Coordinator) -> None:
    headers = {"Origin": PAGE, **_key()}
    whole = run.post("/v1/chat/completions", json=ASK, headers=headers)
    assert whole.status_code == 200
    assert whole.headers["access-control-allow-origin"] == PAGE
    assert "x-request-id" in whole.headers["access-control-expose-headers"]
    with httpx.stream(
        "POST", run.url + "/v1/chat/completions", json={**ASK, "stream": True}, headers=headers, timeout=10
    ) as streamed:
        assert streamed.headers["access-control-allow-origin"] == PAGE
        assert b"".join(streamed.iter_raw()).endswith(b"data: [DONE]\n\n")
    # A wrong key is refused, and the page can read why.
    refused = run.post(
        "/v1/chat/completions", json=ASK, headers={"Origin": PAGE, "Authorization": "Bearer no"}
    )
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == PAGE


def test_without_the_flag_there_is_no_cors(module_runs: Runs) -> None:
    plain = module_runs.start(("p1",))
    response = preflight(plain, PAGE)
    assert response.status_code == 405
    assert "access-control-allow-origin" not in response.headers
    answer = plain.post("/v1/chat/completions", json=ASK, headers={"Origin": PAGE})
    assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers


def _key() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}
