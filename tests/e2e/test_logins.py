"""Logging in where there is no display, end to end: an imported profile a real coordinator
starts a child with, and `coordinator login --remote` signed in over its debugging port from
"a workstation" (this test, through Playwright's CDP connection) against the replica."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from playwright.sync_api import sync_playwright

from child.engines.browser import find_chromium
from coordinator.cli import demo
from tests.support.coordinator import Runs
from tests.support.processes import alive, free_port, stop_process_group, wait_for

pytestmark = pytest.mark.e2e
SECRET = "fake-session-value-for-the-import-test"
SECRETS = (SECRET, "fake-hsid-value-for-the-import-test")


def test_an_imported_profile_is_served_by_a_child(runs: Runs, tmp_path: Path) -> None:
    later = int(time.time()) + 86400
    source = tmp_path / "cookies.txt"
    source.write_text(
        "# Netscape HTTP Cookie File\n"
        f".google.com\tTRUE\t/\tTRUE\t{later}\t__Secure-1PSID\t{SECRET}\n"
        f"#HttpOnly_.google.com\tTRUE\t/\tFALSE\t{later}\tHSID\t{SECRETS[1]}\n"
    )
    saved = tmp_path / "saved"
    argv = [sys.executable, "-m", "coordinator", "login", "imported", "--import", str(source),
            "--saved-dir", str(saved)]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    active = tmp_path / "active"
    active.mkdir()
    (saved / "imported.json").rename(active / "imported.json")

    run = runs.start((), profiles_dir=active, wait_ready=False)

    run.wait_state("imported", "ready")
    answer = run.openai(timeout=30).chat.completions.create(
        model="mock", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content == "echo: hi"
    logs = run.output() + "".join(p.read_text(errors="replace") for p in run.log_dir.glob("*.log"))
    assert not any(value in logs for value in SECRETS)


@pytest.mark.browser
@pytest.mark.skipif(
    find_chromium(None, os.environ) is None,
    reason="no Chromium for the remote login: `bash scripts/setup.sh` installs it",
)
def test_remote_login_over_the_debugging_port(tmp_path: Path) -> None:
    with demo.replica([], tmp_path / "replica.log", ports=(free_port(), free_port())) as site:
        saved = tmp_path / "saved"
        argv = [sys.executable, "-m", "coordinator", "login", "fresh", "--remote", "--site-url", site.url,
                "--saved-dir", str(saved), "--timeout", "60"]  # fmt: skip
        login = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        lines: list[str] = []
        stdout = login.stdout
        assert stdout is not None
        # A thread reads the output as it comes, so that the test waits on the lines, bounded.
        reader = threading.Thread(
            target=lambda: lines.extend(b.decode() for b in iter(stdout.readline, b"")), daemon=True
        )
        reader.start()
        browsers: list[psutil.Process] = []
        try:
            # The operator reads the port off the instructions, and tunnels to it.
            found = wait_for(
                lambda: re.search(r"ssh -N -L (\d+):127\.0\.0\.1:(\d+) ", "".join(lines)),
                60,
                "the instructions",
            )
            port = int(found.group(1))
            assert found.group(2) == found.group(1) and f"localhost:{port}" in "".join(lines)
            browsers = psutil.Process(login.pid).children(recursive=True)
            listening = {c.laddr.ip for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == port
                         and c.status == psutil.CONN_LISTEN}  # fmt: skip
            assert listening == {"127.0.0.1"}
            # chrome://inspect lists the targets of /json/list: the sign-in page is one.
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
            assert any("/login" in target["url"] for target in targets)
            with sync_playwright() as playwright:
                browser = playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{port}")
                page = next(p for c in browser.contexts for p in c.pages if "/login" in p.url)
                assert "HeadlessChrome" not in page.evaluate("navigator.userAgent")
                page.fill('input[name="email"]', "someone@example.com")
                page.fill('input[name="password"]', "hunter2")
                page.click("button#sign-in")
                login.wait(timeout=60)
        finally:
            stop_process_group(login, sig=signal.SIGKILL)
            reader.join(timeout=5)
        text = "".join(lines)
        assert login.returncode == 0, text
        assert "Saved" in text
        profile = saved / "fresh.json"
        assert oct(profile.stat().st_mode & 0o777) == "0o600"
        session = {c["name"]: c["value"] for c in json.loads(profile.read_text())["cookies"]}
        assert demo.REPLICA_COOKIE in session and session[demo.REPLICA_COOKIE] not in text
        # The saved session is one the site takes: its chat page, not the sign-in page.
        page_answer = httpx.get(
            f"{site.url}/prompts/new_chat", cookies={demo.REPLICA_COOKIE: session[demo.REPLICA_COOKIE]}
        )
        assert page_answer.status_code == 200
        assert browsers, "the login ran no browser"
        wait_for(lambda: not alive([p.pid for p in browsers]), 30, "the login browser to exit")


@pytest.mark.browser
@pytest.mark.skipif(find_chromium(None, os.environ) is None, reason="no Chromium: `bash scripts/setup.sh`")
def test_a_browser_takes_every_imported_cookie(tmp_path: Path) -> None:
    later = time.time() + 86400
    export = [
        {"domain": ".google.com", "name": "__Secure-3PSID", "value": SECRET, "path": "/", "secure": True,
         "httpOnly": True, "sameSite": "no_restriction", "expirationDate": later},
        {"domain": ".accounts.google.com", "name": "__Host-GAPS", "value": SECRETS[1], "path": "/",
         "secure": True, "httpOnly": True, "hostOnly": False, "sameSite": "lax", "session": True},
        {"domain": ".google.com", "name": "NID", "value": "x", "path": "/", "secure": False,
         "sameSite": "no_restriction", "expirationDate": later},
    ]  # fmt: skip
    source = tmp_path / "cookies.json"
    source.write_text(json.dumps(export))
    argv = [sys.executable, "-m", "coordinator", "login", "alice", "--import", str(source),
            "--saved-dir", str(tmp_path)]  # fmt: skip
    assert subprocess.run(argv, capture_output=True, timeout=60).returncode == 0
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(None, os.environ))
        try:
            # Chromium refuses a cookie it cannot hold (SameSite=None without Secure, a
            # __Host- cookie for subdomains): every one imported must go in as it is.
            context = browser.new_context(storage_state=str(tmp_path / "alice.json"))
            held = {c["name"]: c for c in context.cookies()}
        finally:
            browser.close()
    assert set(held) == {"__Secure-3PSID", "__Host-GAPS", "NID"}
    assert (
        held["__Secure-3PSID"]["sameSite"] == "None"
        and held["__Host-GAPS"]["domain"] == "accounts.google.com"
    )
