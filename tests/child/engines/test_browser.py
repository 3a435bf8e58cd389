"""Choosing and launching engines without running a browser: the Camoufox path, Chromium lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from child.engines import browser
from child.engines.base import EngineConfigError
from child.engines.browser import (
    BrowserOptions,
    CamoufoxLauncher,
    ChromiumLauncher,
    camoufox_server_options,
    chromium_args,
    create_launcher,
    find_chromium,
)


def test_camoufox_is_launched_as_a_playwright_server_on_the_browser_port() -> None:
    options = camoufox_server_options(BrowserOptions(port=9333, headless=True))
    assert options["port"] == 9333
    assert options["headless"] is True
    assert options["ws_path"] == "camoufox"
    assert "locale" not in options and "config" not in options


def test_the_profiles_locale_and_timezone_go_to_camoufox_too() -> None:
    # Camoufox cannot run here: this checks what it would be given, not what it does with it.
    options = camoufox_server_options(BrowserOptions(port=9333, locale="de-DE", timezone="Europe/Berlin"))
    assert options["locale"] == "de-DE" and options["geoip"] is False
    assert options["config"] == {"timezone": "Europe/Berlin"}


def test_missing_camoufox_says_to_fetch_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser, "camoufox_installed", lambda: False)
    with pytest.raises(EngineConfigError, match="run `camoufox fetch`"):
        create_launcher("camoufox", BrowserOptions(port=9333), {})


def test_auto_prefers_camoufox_then_chromium(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "chrome"
    fake.write_text("")
    monkeypatch.setattr(browser, "camoufox_installed", lambda: True)
    assert isinstance(create_launcher("auto", BrowserOptions(port=1), {}), CamoufoxLauncher)
    monkeypatch.setattr(browser, "camoufox_installed", lambda: False)
    launcher = create_launcher("auto", BrowserOptions(port=1, executable=str(fake)), {})
    assert isinstance(launcher, ChromiumLauncher) and launcher.executable == str(fake)


def test_no_browser_at_all_names_both_ways_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser, "camoufox_installed", lambda: False)
    monkeypatch.setattr(browser, "find_chromium", lambda explicit, environ, headless=True: None)
    with pytest.raises(EngineConfigError) as caught:
        create_launcher("auto", BrowserOptions(port=1), {})
    assert "camoufox fetch" in str(caught.value) and "apt-get install -y chromium" in str(caught.value)


def test_chromium_is_found_from_the_flag_then_the_environment(tmp_path: Path) -> None:
    flag, env = tmp_path / "a", tmp_path / "b"
    flag.write_text("")
    env.write_text("")
    assert find_chromium(str(flag), {"COORDINATOR_BROWSER_PATH": str(env)}) == str(flag)
    assert find_chromium(None, {"COORDINATOR_BROWSER_PATH": str(env)}) == str(env)
    assert find_chromium(str(tmp_path / "missing"), {}) is None


def test_a_headless_child_prefers_the_headless_shell(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    shell = tmp_path / "chromium_headless_shell-1200" / "chrome-linux" / "headless_shell"
    full = tmp_path / "chromium-1200" / "chrome-linux" / "chrome"
    for path in (shell, full):
        path.parent.mkdir(parents=True)
        path.write_text("")
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path))
    assert find_chromium(None, {}) == str(shell)
    # A window needs the full browser (`coordinator login`, --no-headless).
    assert find_chromium(None, {}, headless=False) == str(full)


def test_chromium_remote_endpoint_is_loopback_only() -> None:
    args = chromium_args(BrowserOptions(port=9444))
    assert "--remote-debugging-port=9444" in args
    assert "--remote-debugging-address=127.0.0.1" in args
