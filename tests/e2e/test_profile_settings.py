"""Per-profile settings end to end: a real coordinator and real children.

With mock children: what reaches each child (the proxy in its environment only, the
locale and time zone on its command line), the models it is given, and live changes
(in place, by a restart, `enabled = false`, a bad file). With Chromium children and the
replica: each account's page traffic goes through its own proxy, and only its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psutil
import pytest

from child.engines.browser import find_chromium
from tests.support.coordinator import Coordinator, Runs, StartCoordinator
from tests.support.processes import wait_for
from tests.support.sites import site_and_profiles, start
from tests.support.upstream_proxies import recording_proxy

SECRET = "PROXY-PASS-E2E-987"
POLL = ["--profiles-poll", "0.3"]


def ask(run: Coordinator, model: str) -> str:
    response = run.post(
        "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert response.status_code == 200, response.text
    return response.headers["x-coordinator-child"]


def environ_of(pid: int) -> dict[str, str]:
    found: dict[str, str] = psutil.Process(pid).environ()
    return found


def test_settings_reach_the_child_and_the_proxy_stays_secret(
    start_coordinator: StartCoordinator, tmp_path: Path
) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "alice.toml").write_text(
        f'proxy = "socks5://alice:{SECRET}@127.0.0.1:1080"\nlocale = "de-DE"\ntimezone = "Europe/Berlin"\n'
        'weight = 2\ndaily_limits = { "mock" = 100 }\n'
    )
    # An inherited CHILD_PROXY must reach no child: bob has no proxy of his own.
    run = start_coordinator(
        ("alice", "bob"), profiles_dir=folder, env={"CHILD_PROXY": "http://inherited:x@10.0.0.1:9"}
    )
    children = run.children()
    alice, bob = children["alice"], children["bob"]
    assert environ_of(alice["pid"])["CHILD_PROXY"] == f"socks5://alice:{SECRET}@127.0.0.1:1080"
    assert "CHILD_PROXY" not in environ_of(bob["pid"])
    cmdline = psutil.Process(alice["pid"]).cmdline()
    assert SECRET not in " ".join(cmdline)
    assert cmdline[cmdline.index("--locale") + 1] == "de-DE"
    assert cmdline[cmdline.index("--timezone") + 1] == "Europe/Berlin"
    assert "--locale" not in psutil.Process(bob["pid"]).cmdline()
    assert alice["settings"] == {
        "proxy": "socks5://***@127.0.0.1:1080",
        "locale": "de-DE",
        "timezone": "Europe/Berlin",
        "models": None,
        "weight": 2.0,
        "daily_limits": {"mock": 100},
        "enabled": True,
    }
    assert bob["settings"]["proxy"] is None and bob["settings"]["weight"] == 1.0
    shown = run.status().stdout
    assert (
        "alice: settings proxy socks5://***@127.0.0.1:1080, locale de-DE, timezone Europe/Berlin, "
        "weight 2, limits mock=100"
    ) in shown.splitlines(), shown
    assert "bob: settings" not in shown and SECRET not in shown
    ask(run, "mock")
    assert SECRET not in run.output()
    assert all(SECRET not in path.read_text(errors="replace") for path in run.log_dir.rglob("*.log"))


def test_models_limit_what_a_profile_is_given_and_change_live(
    start_coordinator: StartCoordinator, tmp_path: Path
) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    settings = folder / "alice.toml"
    settings.write_text('models = ["m2"]\n')
    run = start_coordinator(("alice", "bob"), profiles_dir=folder, env={"MOCK_MODELS": "m1,m2"}, args=POLL)
    wait_for(lambda: run.child("alice")["models"] == ["m2"], 30, "alice's models to be known")
    assert run.child("bob")["models"] == ["m1", "m2"]
    assert {ask(run, "m1") for _ in range(4)} == {"bob"}
    assert {ask(run, "m2") for _ in range(4)} == {"alice", "bob"}
    # A request that names no model is given the first model its child may serve, not the
    # page's default when the settings leave that out.
    unnamed = {}
    for _ in range(4):
        response = run.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 200, response.text
        unnamed[response.headers["x-coordinator-child"]] = response.json()["model"]
    assert unnamed == {"alice": "m2", "bob": "m1"}
    # A change of models is applied in place: no restart.
    pid = run.child("alice")["pid"]
    settings.write_text('models = ["m1"]\nweight = 3\n')
    wait_for(lambda: run.child("alice")["models"] == ["m1"], 30, "alice's new models")
    assert run.child("alice")["pid"] == pid and run.child("alice")["settings"]["weight"] == 3.0
    assert {ask(run, "m2") for _ in range(4)} == {"bob"}
    # Now alice serves m1 too (first: bob has served m1 four times today, she never).
    assert "alice" in {ask(run, "m1") for _ in range(4)}
    changed = run.events("profile_settings_changed")
    assert [(e["child"], e["changed"], e["effect"]) for e in changed] == [
        ("alice", ["models", "weight"], "applied in place")
    ]


def test_daily_limits_and_weight_steer_the_quota_view_and_the_scheduling(
    start_coordinator: StartCoordinator, tmp_path: Path
) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    settings = folder / "alice.toml"
    settings.write_text("weight = 3\ndaily_limits = { m1 = 4 }\n")
    run = start_coordinator(
        ("alice", "bob"),
        profiles_dir=folder,
        env={"MOCK_MODELS": "m1,m2"},
        args=[*POLL, "--daily-limit", "m1=8"],
    )

    def limits() -> dict[str, Any]:
        rows = run.get("/admin/usage/quota").json()["rows"]
        return {row["profile"]: row["daily_limit"] for row in rows if row["model"] == "m1"}

    assert limits() == {"alice": 4, "bob": 8}
    # Shares of the limit kept even: 2 of 4 to alice for 4 of 8 to bob.
    assert sorted(ask(run, "m1") for _ in range(6)) == ["alice"] * 2 + ["bob"] * 4
    # No limit known for m2: the weight shares it, 3 to 1.
    assert sorted(ask(run, "m2") for _ in range(8)) == ["alice"] * 6 + ["bob"] * 2
    settings.write_text("weight = 3\ndaily_limits = { m1 = 2 }\n")
    wait_for(lambda: limits() == {"alice": 2, "bob": 8}, 30, "alice's new limit in the view")


def test_live_changes_restart_disable_and_reject(start_coordinator: StartCoordinator, tmp_path: Path) -> None:
    run = start_coordinator(("alice", "bob"), args=POLL)
    settings = run.profiles / "alice.toml"
    before = run.child("alice")
    # A locale is the browser's: the child restarts to take it.
    settings.write_text('locale = "fr-FR"\n')
    after = wait_for(
        lambda: (c := run.child("alice"))["state"] == "ready" and c["pid"] != before["pid"] and c,
        30,
        "alice to restart with her locale",
    )
    assert after["settings"]["locale"] == "fr-FR" and after["restarts"] == before["restarts"] + 1
    assert "fr-FR" in psutil.Process(after["pid"]).cmdline()
    # A bad file is reported with its path and reason; the child runs on as it was.
    settings.write_text(f'locale = "fr-FR"\nproxy = "http://alice:{SECRET}@proxy.example"\n')
    wait_for(lambda: run.events("profile_rejected"), 30, "the bad settings file to be reported")
    rejected = run.events("profile_rejected")[0]
    assert rejected["path"] == str(run.profiles / "alice.json")
    assert rejected["reason"] == f"settings file {settings}: 'proxy' needs a port (host:port)"
    assert run.child("alice")["pid"] == after["pid"]
    # enabled = false stops the child and takes it off the roster; true brings it back.
    settings.write_text("enabled = false\n")
    wait_for(lambda: "alice" not in run.children(), 30, "alice to be retired")
    removed = [e for e in run.events("profile_removed") if e["child"] == "alice"]
    assert removed and removed[0]["reason"] == "disabled in its settings file"
    assert {ask(run, "mock") for _ in range(3)} == {"bob"}
    settings.write_text("enabled = true\n")
    wait_for(lambda: run.children().get("alice", {}).get("state") == "ready", 30, "alice to be back")
    assert SECRET not in run.output()


def test_a_disabled_profile_is_not_started(start_coordinator: StartCoordinator, tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "carol.toml").write_text("enabled = false\n")
    (folder / "dave.toml").write_text("weight = -1\n")
    run = start_coordinator(("alice", "carol", "dave"), profiles_dir=folder)
    assert set(run.children()) == {"alice"}
    rejected = run.events("profile_rejected")
    assert [e["path"] for e in rejected] == [str(folder / "dave.json")]
    assert rejected[0]["reason"].startswith(f"settings file {folder / 'dave.toml'}: 'weight'")


# -- real browsers --------------------------------------------------------------------------

needs_chromium = pytest.mark.skipif(
    find_chromium(None, os.environ) is None, reason="no Chromium: `bash scripts/setup.sh` installs it"
)


def served_by_both(run: Coordinator) -> set[str]:
    served: set[str] = set()
    client = run.openai(timeout=60)
    for _ in range(6):
        raw = client.chat.completions.with_raw_response.create(
            model="replica-pro", messages=[{"role": "user", "content": "what is the colour of the sky"}]
        )
        assert raw.parse().choices[0].message.content == (
            "Replica replica-pro answers: what is the colour of the sky"
        )
        served.add(raw.headers["x-coordinator-child"])
        if len(served) == 2:
            break
    return served


@pytest.mark.browser
@needs_chromium
def test_each_accounts_page_traffic_goes_through_its_own_proxy_only(runs: Runs, tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    with (
        recording_proxy("http", "alice", SECRET) as http_proxy,
        recording_proxy("socks5", "bob", SECRET + "-bob") as socks_proxy,
        site_and_profiles(folder, "--first-token-ms", "100", "--token-ms", "20") as site,
    ):
        # demo-1 is "alice" behind an HTTP proxy, demo-2 "bob" behind a SOCKS5 one.
        (folder / "demo-1.toml").write_text(f'proxy = "{http_proxy.url()}"\nlocale = "de-DE"\n')
        (folder / "demo-2.toml").write_text(f'proxy = "{socks_proxy.url()}"\ntimezone = "Asia/Tokyo"\n')
        run = start(runs, site, folder)
        assert served_by_both(run) == {"demo-1", "demo-2"}
        page = site.url.removeprefix("http://")
        answers = _answer_host(site.site_config)
        for proxy in (http_proxy, socks_proxy):
            # The page and the answers, each through the account's proxy, which asked for its password.
            assert page in proxy.connects and answers in proxy.connects, proxy.connects
            assert proxy.record.refused == []
        # Only its own account: each proxy carried the session cookie of one profile.
        alice_session, bob_session = site.sessions["demo-1"], site.sessions["demo-2"]
        assert alice_session.encode() in http_proxy.sent() and bob_session.encode() not in http_proxy.sent()
        assert bob_session.encode() in socks_proxy.sent() and alice_session.encode() not in socks_proxy.sent()
        children = run.children()
        assert children["demo-1"]["settings"]["proxy"] == f"http://***@127.0.0.1:{http_proxy.port}"
        assert SECRET not in run.output()
        assert all(SECRET not in path.read_text(errors="replace") for path in run.log_dir.rglob("*.log"))
        _check_context(children["demo-1"], "de-DE", None)
        _check_context(children["demo-2"], None, "Asia/Tokyo")


def _answer_host(site_config: Path) -> str:
    for line in site_config.read_text().splitlines():
        if line.startswith("answer_host"):
            return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError("no answer_host in the replica's site config")


def _check_context(child: dict[str, Any], locale: str | None, timezone: str | None) -> None:
    """The page's own view of its locale and time zone, through the child's debugging port."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{child['ports']['browser']}")
        page = browser.contexts[0].pages[0]
        seen = page.evaluate("() => [navigator.language, Intl.DateTimeFormat().resolvedOptions().timeZone]")
    if locale is not None:
        assert seen[0] == locale
    if timezone is not None:
        assert seen[1] == timezone
