"""The dashboard's routes with a real coordinator and mock children: the page and its
policy, the children's screenshots (PNG, cache, errors) and the usage per profile and day.

The page itself is driven in Chromium by tests/e2e/test_dashboard_browser.py.
"""

from __future__ import annotations

import time

import httpx
import pytest

from coordinator.serving import dashboard
from tests.support.coordinator import Coordinator, Runs, StartCoordinator
from tests.support.processes import wait_for

ADMIN, CLIENT = "dash-admin-key", "dash-client-key"
PNG = b"\x89PNG\r\n\x1a\n"
ASK = {"model": "mock", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture(scope="module")
def run(module_runs: Runs) -> Coordinator:
    env = {"COORDINATOR_ADMIN_KEY": ADMIN, "COORDINATOR_API_KEY": CLIENT}
    return module_runs.start(("alpha", "beta"), env=env, api_key=ADMIN)


def test_the_page_and_its_files_load_without_a_key_under_a_strict_policy(run: Coordinator) -> None:
    for path, (_, content_type) in dashboard.FILES.items():
        response = httpx.get(run.url + path, timeout=10)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == content_type
        assert response.headers["content-security-policy"] == dashboard.CSP
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "dashboard.js" in httpx.get(run.url + "/dashboard", timeout=10).text
    config = httpx.get(run.url + dashboard.CONFIG, timeout=10)
    assert config.json() == {"key_required": True}
    assert httpx.post(run.url + "/dashboard", timeout=10).status_code == 405


def test_a_screenshot_is_a_png_behind_the_admin_key(run: Coordinator) -> None:
    shot = run.get("/admin/children/alpha/screenshot")
    assert shot.status_code == 200
    assert shot.headers["content-type"] == "image/png"
    assert shot.headers["cache-control"] == "no-store"
    assert shot.content.startswith(PNG)
    assert httpx.get(run.url + "/admin/children/alpha/screenshot", timeout=10).status_code == 401
    client = httpx.get(
        run.url + "/admin/children/alpha/screenshot",
        headers={"Authorization": f"Bearer {CLIENT}"},
        timeout=10,
    )
    assert client.status_code == 403


def test_unknown_child_and_wrong_methods(run: Coordinator) -> None:
    unknown = run.get("/admin/children/nobody/screenshot")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "child_not_found"
    posted = run.post("/admin/children/alpha/screenshot")
    assert posted.status_code == 405 and posted.headers["allow"] == "GET, HEAD"
    got = run.get("/admin/children/alpha/restart")
    assert got.status_code == 405 and got.headers["allow"] == "POST"
    assert run.get("/admin/children/alpha/paint").json()["error"]["code"] == "unknown_action"


def test_a_screenshot_is_cached_for_a_few_seconds_then_taken_again(
    start_coordinator: StartCoordinator,
) -> None:
    solo = start_coordinator(("solo",))
    # The mock draws a block per answer: the picture changes once the child has served, but
    # a viewer sees the new one only when the cached one has aged out.
    before = solo.get("/admin/children/solo/screenshot").content
    taken = time.monotonic()
    assert solo.post("/v1/chat/completions", json=ASK).status_code == 200
    again = [solo.get("/admin/children/solo/screenshot").content for _ in range(5)]
    if time.monotonic() - taken < 2.5:  # well inside the 3 s a picture is kept
        assert again == [before] * 5

    def new_picture() -> bytes | None:
        shot = solo.get("/admin/children/solo/screenshot").content
        return shot if shot != before else None

    changed = wait_for(new_picture, 30, "a new picture once the cached one expired")
    assert changed.startswith(PNG)
    # A child that is not up has no picture: 503, with when to ask again.
    assert solo.post("/admin/children/solo/drain").status_code == 202
    solo.wait_state("solo", "stopped")
    down = solo.get("/admin/children/solo/screenshot")
    assert down.status_code == 503 and down.json()["error"]["code"] == "screenshot_unavailable"
    assert down.headers["retry-after"] == "3"
    assert "stopped" in down.json()["error"]["message"]


def test_usage_by_profile_and_day(run: Coordinator) -> None:
    client = {"Authorization": f"Bearer {CLIENT}"}
    for _ in range(3):
        assert run.post("/v1/chat/completions", json=ASK, headers=client).status_code == 200
    today = time.strftime("%Y-%m-%d", time.gmtime())

    def counted() -> list[dict[str, object]] | None:
        rows: list[dict[str, object]] = run.get("/admin/usage", params={"group_by": "profile,day"}).json()[
            "data"
        ]
        return rows if sum(int(str(row["requests"])) for row in rows) >= 3 else None

    rows = wait_for(counted, 30, "the ledger's rows")
    assert {str(row["group"]).rsplit(" ", 1)[1] for row in rows} == {today}
    assert {str(row["group"]).rsplit(" ", 1)[0] for row in rows} <= {"alpha", "beta"}
