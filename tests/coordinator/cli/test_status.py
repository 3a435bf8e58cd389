"""`coordinator status` logic against a fake coordinator (httpx MockTransport): auth, errors, table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from coordinator.cli import main, status
from coordinator.cli.status import Status, StatusError

SUMMARY = {
    "status": "ready",
    "children": {"total": 2, "serving": 1, "by_state": {"ready": 1, "cooldown": 1}, "list": []},
    "queue": {"waiting": 3, "max": 100},
    "in_flight": 1,
}
ALPHA = {
    "id": "alpha",
    "profile": "alpha",
    "state": "busy",
    "pid": 4242,
    "ports": {"api": 3100, "stream": 3200, "browser": 9222},
    "request_id": "req_abc",
    "served": 17,
    "restarts": 0,
    "last_error": None,
    "models": ["mock"],
    "seconds_in_state": 12.4,
    "cooldown_seconds": None,
    "cooldown_reason": None,
    "next_start_seconds": None,
    "log_file": "logs/coordinator/alpha.log",
}
BETA = {
    **ALPHA,
    "id": "beta",
    "profile": "beta",
    "state": "cooldown",
    "pid": None,
    "ports": {"api": 3101, "stream": 3201, "browser": 9223},
    "request_id": None,
    "served": 3,
    "restarts": 2,
    "last_error": "quota message on the page:\n  " + "you have exceeded your quota " * 5,
    "seconds_in_state": 7300.0,
}
LISTING = {"object": "list", "data": [ALPHA, BETA]}


def coordinator(
    seen: list[httpx.Request] | None = None, key: str | None = None, routes: dict[str, Any] | None = None
) -> httpx.MockTransport:
    """A fake coordinator that wants `key` (if any) and answers `routes` (path → response)."""
    answers = {
        "/ready": httpx.Response(200, json=SUMMARY),
        "/admin/children": httpx.Response(200, json=LISTING),
        **(routes or {}),
    }

    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if key is not None and request.headers.get("authorization") != f"Bearer {key}":
            return httpx.Response(401, json={"error": {"message": "Missing or wrong API key"}})
        answer = answers.get(request.url.path)
        return answer if isinstance(answer, httpx.Response) else httpx.Response(404, json={})

    return httpx.MockTransport(handle)


def test_fetch_sends_the_first_key_as_bearer() -> None:
    seen: list[httpx.Request] = []
    key = status.first_key(" k1 , k2")
    found = status.fetch("http://coordinator:2048/", key, transport=coordinator(seen, key="k1"))
    assert found.url == "http://coordinator:2048"
    assert found.summary == SUMMARY and found.listing == LISTING
    assert [r.url.path for r in seen] == ["/ready", "/admin/children", "/admin/usage/quota"]
    assert all(r.headers["authorization"] == "Bearer k1" for r in seen)


def test_no_key_sends_no_authorization() -> None:
    seen: list[httpx.Request] = []
    status.fetch("localhost:2048", None, transport=coordinator(seen))
    assert str(seen[0].url) == "http://localhost:2048/ready"
    assert "authorization" not in seen[0].headers


def test_a_coordinator_that_wants_a_key() -> None:
    with pytest.raises(StatusError) as missing:
        status.fetch("http://c", None, transport=coordinator(key="k1"))
    assert missing.value.message == (
        "the coordinator wants an API key: pass --api-key or set COORDINATOR_API_KEY"
    )
    with pytest.raises(StatusError) as wrong:
        status.fetch("http://c", "nope", transport=coordinator(key="k1"))
    assert "refused the API key" in wrong.value.message
    assert "nope" not in wrong.value.message


def test_a_client_key_refused_on_admin_asks_for_an_admin_key() -> None:
    forbidden = {"/admin/children": httpx.Response(403, json={"error": {"message": "needs an admin key"}})}
    with pytest.raises(StatusError) as refused:
        status.fetch("http://c", "client-key", transport=coordinator(routes=forbidden))
    assert "--admin-key" in refused.value.message and "client-key" not in refused.value.message


def test_status_sends_the_admin_key_before_the_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str | None] = []

    def fetch(url: str, key: str | None, timeout: float, transport: object = None) -> Status:
        sent.append(key)
        return Status(url, SUMMARY, LISTING)

    monkeypatch.setattr(status, "fetch", fetch)
    env = {"COORDINATOR_API_KEY": "k1"}
    assert CliRunner().invoke(main.app, ["status"], env=env).exit_code == 0
    assert CliRunner().invoke(main.app, ["status", "--admin-key", "a1"], env=env).exit_code == 0
    assert sent == ["k1", "a1"]


def test_ready_503_still_gives_the_summary() -> None:
    unavailable = {**SUMMARY, "status": "unavailable"}
    routes = {"/ready": httpx.Response(503, json=unavailable)}
    found = status.fetch("http://c", transport=coordinator(routes=routes))
    assert status.headline(found).startswith("coordinator at http://c: unavailable,")


@pytest.mark.parametrize(
    "routes",
    [
        {"/admin/children": httpx.Response(404, json={"error": {"message": "No route /admin/children"}})},
        {"/ready": httpx.Response(200, text="<html>hello</html>")},
        {"/admin/children": httpx.Response(200, json={"something": "else"})},
    ],
)
def test_something_else_at_the_url(routes: dict[str, Any]) -> None:
    with pytest.raises(StatusError) as caught:
        status.fetch("http://c", transport=coordinator(routes=routes))
    assert "--url" in caught.value.message


def test_transport_errors_are_translated() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    with pytest.raises(StatusError) as refused:
        status.fetch("http://c:1", transport=httpx.MockTransport(refuse))
    assert refused.value.message == (
        "no coordinator answers at http://c:1: is it running? (connection refused)"
    )
    with pytest.raises(StatusError) as timed_out:
        status.fetch("http://c:1", timeout=2, transport=httpx.MockTransport(hang))
    assert "(no answer in 2s)" in timed_out.value.message
    with pytest.raises(StatusError) as bad_url:
        status.fetch("ftp://c:1")
    assert "not an http:// or https:// URL" in bad_url.value.message


def test_render_is_an_aligned_table() -> None:
    text = status.render(Status("http://c", SUMMARY, LISTING))
    headline, blank, header, alpha, beta = text.splitlines()
    assert headline == (
        "coordinator at http://c: ready, 1/2 children serving, queue 3/100 waiting, 1 in flight"
    )
    assert blank == ""
    assert header.split("  ")[0] == "PROFILE"
    assert alpha.split() == ["alpha", "busy", "4242", "3100/3200/9222", "req_abc", "17", "0", "12s", "-"]
    assert beta.split()[:8] == ["beta", "cooldown", "-", "3101/3201/9223", "-", "3", "2", "2h"]
    # The last error is cut to one short line.
    assert beta.split("2h", 1)[1].strip().startswith("quota message on the page: you have exceeded")
    assert beta.endswith("...") and len(beta.split("2h", 1)[1].strip()) == 60
    # Every column starts at the same offset on every line.
    assert header.index("STATE") == alpha.index("busy") == beta.index("cooldown")
    assert header.index("LAST ERROR") == alpha.rindex("-")


def test_render_names_the_selectors_a_child_misses_below_the_table() -> None:
    drifted = {**BETA, "selectors_missing": ["prompt", "zero_state"]}
    text = status.render(Status("http://c", SUMMARY, {"object": "list", "data": [ALPHA, drifted]}))
    table, drift = text.split("\n\n")[1:]
    assert len(table.splitlines()) == 3
    assert drift.splitlines() == [
        "beta: selectors missing: prompt, zero_state",
        "the site's page changed: see `coordinator check-site --profile FILE`, fix with --site-config",
    ]
    assert "selectors missing" not in status.render(Status("http://c", SUMMARY, LISTING))


def test_render_without_children() -> None:
    text = status.render(Status("http://c", SUMMARY, {"object": "list", "data": []}))
    assert text.endswith("\n\nno children")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (12.9, "12s"), (59.99, "59s"), (60, "1m"), (3599, "59m"), (7300, "2h"), (90000, "1d"),
     (None, "-"), (-3, "0s")],
)  # fmt: skip
def test_human_seconds(seconds: float | None, text: str) -> None:
    assert status.human_seconds(seconds) == text


def test_first_key(tmp_path: Path) -> None:
    assert status.first_key(None) is None
    assert status.first_key(" , ,") is None
    assert status.first_key("a,b") == "a"
    keys = tmp_path / "keys"
    keys.write_text("# the operators\n\n  from-file \nsecond\n")
    assert status.first_key(None, keys) == "from-file"
    assert status.first_key("listed", keys) == "listed"
    with pytest.raises(StatusError, match="cannot read the API key file"):
        status.first_key(None, tmp_path / "missing")


def test_json_is_the_listing_with_the_summary() -> None:
    parsed = json.loads(status.to_json(Status("http://c", SUMMARY, LISTING)))
    assert parsed == {**LISTING, "summary": SUMMARY, "quota": {}}


def test_render_lists_cooldowns_per_model_and_of_whole_profiles_below_the_table() -> None:
    quota = {**ALPHA, "state": "ready", "model_cooldowns": {"flash": 700.0, "pro": 14400.0}}
    limited = {**BETA, "cooldown_reason": "rate_limited", "cooldown_seconds": 250.0, "model_cooldowns": {}}
    text = status.render(Status("http://c", SUMMARY, {"object": "list", "data": [quota, limited]}))
    cooldowns = text.split("\n\n")[2]
    assert cooldowns.splitlines() == [
        "alpha: out of quota for pro 4h, flash 11m",
        "beta: cooldown (rate_limited) 4m",
    ]
    assert "out of quota" not in status.render(Status("http://c", SUMMARY, LISTING))


def test_render_shows_what_each_profiles_settings_file_sets() -> None:
    configured = {
        **ALPHA,
        "settings": {
            "proxy": "socks5://***@proxy.example:1080", "locale": "de-DE", "timezone": None,
            "models": ["pro"], "weight": 3.0, "daily_limits": {"pro": 40}, "enabled": True,
        },
    }  # fmt: skip
    plain = {**BETA, "settings": {"proxy": None, "models": None, "weight": 1.0, "daily_limits": {}}}
    text = status.render(Status("http://c", SUMMARY, {"object": "list", "data": [configured, plain]}))
    assert (
        "alpha: settings proxy socks5://***@proxy.example:1080, locale de-DE, models pro, weight 3, "
        "limits pro=40"
    ) in text.splitlines()
    assert "beta: settings" not in text


def fleet_transport(down: set[str] = frozenset()) -> httpx.MockTransport:  # type: ignore[assignment]
    """Two shards: h1 runs alpha, h2 runs beta; a host in `down` refuses connections."""
    limited = {**BETA, "cooldown_reason": "rate_limited", "cooldown_seconds": 250.0}
    listings = {"h1:2048": [ALPHA], "h2:2048": [limited]}

    def handle(request: httpx.Request) -> httpx.Response:
        host = f"{request.url.host}:{request.url.port}"
        if request.url.host in down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        index = sorted(listings).index(host)
        shard = {"index": index, "count": 2, "skipped": 1}
        if request.url.path == "/ready":
            return httpx.Response(200, json={**SUMMARY, "shard": shard})
        return httpx.Response(200, json={"object": "list", "data": listings[host], "shard": shard})

    return httpx.MockTransport(handle)


def test_split_urls_takes_repeats_and_commas() -> None:
    assert status.split_urls(["h1:2048, http://h2:2048/", "h1:2048"]) == ["http://h1:2048", "http://h2:2048"]
    with pytest.raises(StatusError, match="--url is empty"):
        status.split_urls([" , "])


def test_several_coordinators_make_one_table_with_a_host_column() -> None:
    fleet = status.fetch_all(["http://h1:2048", "http://h2:2048"], transport=fleet_transport())
    text = status.render_fleet(fleet)
    heads, grid, notes = text.split("\n\n")
    assert heads.splitlines() == [
        "coordinator at http://h1:2048 (shard 0/2, 1 profiles skipped): ready, 1/2 children serving, "
        "queue 3/100 waiting, 1 in flight",
        "coordinator at http://h2:2048 (shard 1/2, 1 profiles skipped): ready, 1/2 children serving, "
        "queue 3/100 waiting, 1 in flight",
        "all 2 answering: 2/4 children serving",
    ]
    header, first, second = grid.splitlines()
    assert header.split()[:3] == ["HOST", "PROFILE", "STATE"]
    assert first.split()[:3] == ["h1:2048", "alpha", "busy"]
    assert second.split()[:3] == ["h2:2048", "beta", "cooldown"]
    assert notes == "h2:2048 beta: cooldown (rate_limited) 4m"
    parsed = json.loads(status.fleet_json(fleet))
    assert [c["url"] for c in parsed["coordinators"]] == ["http://h1:2048", "http://h2:2048"]
    assert parsed["coordinators"][1]["data"][0]["id"] == "beta" and parsed["unreachable"] == []


def test_one_coordinator_down_is_named_and_the_others_still_shown() -> None:
    fleet = status.fetch_all(["http://h1:2048", "http://h2:2048"], transport=fleet_transport({"h2"}))
    text = status.render_fleet(fleet)
    assert "coordinator at http://h2:2048: unreachable: no coordinator answers at http://h2:2048" in text
    assert "h1:2048  alpha" in text
    with pytest.raises(StatusError, match="no coordinator answers at http://h1:2048"):
        status.fetch_all(["http://h1:2048"], transport=fleet_transport({"h1"}))


QUOTA_VIEW = {
    "quota_day": {"start": "2026-12-01T00:00:00-08:00", "end": "2026-12-02T00:00:00-08:00",
                  "timezone": "America/Los_Angeles"},
    "rows": [
        {"profile": "alpha", "model": "flash", "requests": 12, "quota_hits": 0, "last_quota_hit": None,
         "daily_limit": None, "remaining": None},
        {"profile": "alpha", "model": "pro", "requests": 63, "quota_hits": 2,
         "last_quota_hit": "2026-12-01T18:02:11Z", "daily_limit": 100, "remaining": 37},
        {"profile": "beta", "model": "pro", "requests": 0, "quota_hits": 0, "last_quota_hit": None,
         "daily_limit": 100, "remaining": 100},
    ],
}  # fmt: skip


def test_render_gives_each_profiles_quota_day_below_the_table() -> None:
    text = status.render(Status("http://c", SUMMARY, LISTING, QUOTA_VIEW))
    assert text.split("\n\n")[-1].splitlines() == [
        "quota day since 2026-12-01T00:00:00-08:00 (America/Los_Angeles)",
        "alpha: quota today flash 12 used, pro 37/100 left; 2 quota hits, last 2026-12-01T18:02:11Z",
        "beta: quota today pro 100/100 left",
    ]
    # A coordinator without the quota view (404) shows none.
    found = status.fetch("http://c", None, transport=coordinator())
    assert found.quota == {} and "quota today" not in status.render(found)


def test_the_headline_names_the_lanes_in_which_requests_wait() -> None:
    queue = {"waiting": 5, "max": 100, "by_lane": {"high": 1, "normal": 0, "low": 4}}
    text = status.render(Status("http://c", {**SUMMARY, "queue": queue}, LISTING))
    assert text.splitlines()[0] == (
        "coordinator at http://c: ready, 1/2 children serving, "
        "queue 5/100 waiting (high 1, low 4), 1 in flight"
    )
    idle = {"waiting": 0, "max": 100, "by_lane": {"high": 0, "normal": 0, "low": 0}}
    assert "waiting, 1 in flight" in status.render(Status("http://c", {**SUMMARY, "queue": idle}, LISTING))
