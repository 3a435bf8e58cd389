"""Real browsers end to end: coordinator, Chromium children, the replica, the openai client.

Each test runs the replica (`python -m child.replica`) with the pace and quota it needs,
writes profiles holding the replica's session cookies, and runs the coordinator with
`--engine chromium --site-url` pointing at it. What the page did is read back from the
replica's record of runs, and from the child's own browser over its debugging port.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import psutil
import pytest
from openai.types.chat import ChatCompletionMessageParam
from playwright.sync_api import sync_playwright

from child.engines.browser import find_chromium
from coordinator.cli import demo
from tests.support.coordinator import Coordinator, Runs
from tests.support.processes import free_port, free_port_bases, stop_process_group, wait_for
from tests.support.sites import Site, site_and_profiles, start

pytestmark = pytest.mark.skipif(
    find_chromium(None, os.environ) is None, reason="no Chromium: `bash scripts/setup.sh` installs it"
)
QUESTION: list[ChatCompletionMessageParam] = [{"role": "user", "content": "what is the colour of the sky"}]


@pytest.fixture(scope="module")
def browsers(
    module_runs: Runs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Coordinator, Site]]:
    folder = tmp_path_factory.mktemp("browsers") / "profiles"
    with site_and_profiles(folder, "--first-token-ms", "300", "--token-ms", "60") as site:
        yield start(module_runs, site, folder), site


def page_turns(browser_port: int) -> int:
    """How many model turns the child's live page shows, seen through its debugging port."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{browser_port}")
        page = browser.contexts[0].pages[0]
        count = page.locator("ms-chat-turn .chat-turn-container.model").count()
        return count


def test_non_stream_answer_is_what_the_page_rendered(browsers: tuple[Coordinator, Site]) -> None:
    run, site = browsers
    raw = run.openai(timeout=60).chat.completions.with_raw_response.create(
        model="replica-pro", messages=QUESTION
    )
    answer = raw.parse().choices[0].message.content
    assert answer == "Replica replica-pro answers: what is the colour of the sky"
    recorded = site.last_reported_run()
    assert recorded["status"] == "completed" and recorded["text"] == answer
    assert raw.headers["x-coordinator-child"] in {"demo-1", "demo-2"}


def test_stream_starts_while_the_page_is_still_rendering(browsers: tuple[Coordinator, Site]) -> None:
    run, site = browsers
    stream = run.openai(timeout=60).chat.completions.create(
        model="replica-pro", messages=QUESTION, stream=True
    )
    chunks = iter(stream)
    first = next(chunks)
    # The first token is out while the page is still rendering the rest.
    assert site.last_run()["status"] == "running"
    text = (first.choices[0].delta.content or "") + "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "Replica replica-pro answers: what is the colour of the sky"
    recorded = site.last_reported_run()
    assert recorded["status"] == "completed" and recorded["text"] == text


def test_settings_and_model_reach_the_page(browsers: tuple[Coordinator, Site]) -> None:
    run, site = browsers
    answer = run.openai(timeout=60).chat.completions.create(
        model="replica-flash",
        messages=[{"role": "user", "content": "one two three four five six seven eight"}],
        temperature=0.3,
        top_p=0.5,
        max_tokens=6,
        stop=["seven"],
    )
    recorded = site.last_run()
    assert recorded["model"] == "replica-flash"
    settings = recorded["settings"]
    assert (settings["temperature"], settings["top_p"], settings["max_tokens"]) == (0.3, 0.5, 6)
    assert settings["stop"] == ["seven"]
    assert (
        answer.choices[0].message.content
        == recorded["answer"]
        == "Replica replica-flash answers: one two three"
    )
    assert answer.choices[0].finish_reason == "length"  # the six tokens cut it before "seven"
    # Requests without settings get the page's defaults back, and no stop chips. Round-robin
    # sends one of the next two to the page that had the settings above.
    for _ in range(2):
        run.openai(timeout=60).chat.completions.create(model="replica-flash", messages=QUESTION)
        later = site.last_run()["settings"]
        assert later["stop"] == []
        assert (later["temperature"], later["top_p"], later["max_tokens"]) == (1.0, 0.95, 65536)


def test_the_conversation_goes_as_one_prompt(browsers: tuple[Coordinator, Site]) -> None:
    run, site = browsers
    run.openai(timeout=60).chat.completions.create(
        model="replica-pro",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "And now?"},
        ],
    )
    # The system message is in the page's System instructions field, not the prompt.
    assert site.last_run()["prompt"] == "User: Hi\n\nAssistant: Hello.\n\nUser: And now?"
    assert site.last_run()["system"] == "You are terse."


def test_cancel_and_disconnect_stop_the_page_and_the_next_request_starts_clean(
    browsers: tuple[Coordinator, Site],
) -> None:
    run, site = browsers
    # An answer of 400 words at 60 ms a word: still running however late, on a loaded
    # machine, the cancel and the disconnect below come.
    long_question: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": " ".join(f"word{n}" for n in range(400))}
    ]
    client = run.openai(timeout=60, default_headers={"X-Request-ID": "browser-cancel"})
    stream = client.chat.completions.create(model="replica-pro", messages=long_question, stream=True)
    chunks = iter(stream)
    next(chunks)
    child_id = wait_for(
        lambda: next((c["id"] for c in run.children().values() if c["state"] == "busy"), None), 30, "busy"
    )
    assert run.post("/v1/cancel/browser-cancel").status_code == 200
    with pytest.raises(openai.APIError, match="cancel"):
        for _ in chunks:
            pass
    wait_for(lambda: site.last_run()["status"] == "stopped", 30, "the page to record the stop")
    run.wait_state(child_id, "ready", timeout=30)
    assert page_turns(run.child(child_id)["ports"]["browser"]) == 0

    body = {"model": "replica-pro", "messages": long_question, "stream": True}
    with httpx.stream("POST", run.url + "/v1/chat/completions", json=body, timeout=30) as response:
        held = response.iter_raw()
        next(held)
    wait_for(lambda: site.last_run()["status"] == "stopped", 30, "the page to record the disconnect")
    wait_for(
        lambda: all(c["state"] == "ready" for c in run.children().values()), 30, "the children to be free"
    )
    for child in run.children().values():
        assert page_turns(child["ports"]["browser"]) == 0
    answer = client.chat.completions.create(model="replica-pro", messages=QUESTION)
    assert answer.choices[0].message.content == "Replica replica-pro answers: what is the colour of the sky"


def test_models_come_from_the_page(browsers: tuple[Coordinator, Site]) -> None:
    run, _ = browsers
    assert sorted(m.id for m in run.openai().models.list().data) == [
        "replica-flash",
        "replica-lite",
        "replica-pro",
    ]
    # The last test's page may still be resetting to a new chat (busy) for a moment.
    wait_for(
        lambda: all(child["state"] == "ready" for child in run.children().values()), 30, "ready children"
    )


def test_a_screenshot_is_the_live_page_as_chromium_renders_it(browsers: tuple[Coordinator, Site]) -> None:
    run, _ = browsers
    for child_id in run.children():
        shot = run.get(f"/admin/children/{child_id}/screenshot", timeout=30)
        assert shot.status_code == 200, shot.text
        assert shot.headers["content-type"] == "image/png"
        assert shot.content.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", shot.content[16:24])  # IHDR: the page's viewport
        assert width >= 800 and height >= 500, (width, height)
        assert len(shot.content) > 5_000  # a rendered page, not a blank


def test_models_listed_while_the_browsers_start_are_the_pages_and_are_served(
    runs: Runs, tmp_path: Path
) -> None:
    # Issue 10: a starting child names its built-in models (gemini-2.5-pro) until it has read
    # the page's list; listed then, such a name got 404 model_not_found once the child was up.
    folder = tmp_path / "profiles"
    with site_and_profiles(folder, "--first-token-ms", "50", "--token-ms", "10") as site:
        run = start(runs, site, folder, wait_ready=False)
        page_models = {"replica-pro", "replica-flash", "replica-lite"}
        served: set[str] = set()

        def started() -> bool:
            # Read before listing: once every child is ready, this very pass lists all models.
            children = run.children().values()
            ready = bool(children) and all(child["state"] == "ready" for child in children)
            listed = {model["id"] for model in run.get("/v1/models").json()["data"]}
            assert listed <= page_models, f"listed during start-up: {sorted(listed)}"
            for model in sorted(listed - served):
                answer = run.post(
                    "/v1/chat/completions", json={"model": model, "messages": QUESTION}, timeout=30
                )
                assert answer.status_code == 200, f"{model!r} was listed but answered {answer.text}"
                served.add(model)
            return ready

        wait_for(started, 60, "every child to be ready")
        assert served == page_models


def test_ctrl_c_of_the_demo_stops_every_child_with_exit_0(tmp_path: Path) -> None:
    # Issue 10: on Ctrl-C the browser, in its child's process group, dies of the signal too;
    # a child whose browser died after it was told to stop exited 1. A terminal's Ctrl-C is
    # SIGINT to the whole foreground group: the coordinator, the replica, children, browsers.
    port = free_port()
    api, stream, browser = free_port_bases(2, ranges=3)
    argv = [
        sys.executable, "-m", "coordinator", "run", "--demo",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--base-api-port", str(api),
        "--base-stream-port", str(stream),
        "--base-browser-port", str(browser),
        "--log-dir", str(tmp_path / "logs"),
        "--log-format", "json",
    ]  # fmt: skip
    output_path = tmp_path / "coordinator.out"
    with output_path.open("wb") as output:
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    run = Coordinator(process, port, tmp_path, tmp_path / "logs", output_path, ["demo-1", "demo-2"])
    try:

        def all_ready() -> bool:
            assert process.poll() is None, run.output()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                children = run.children()
                return sorted(children) == run.child_ids and all(
                    child["state"] == "ready" for child in children.values()
                )
            return False

        wait_for(all_ready, 60, "every demo child to be ready")
        code = stop_process_group(process, timeout=20, sig=signal.SIGINT)
        assert code == 0, run.output()[-3000:]
        exits = {event["child"]: event["how"] for event in run.events("child_exit")}
        assert exits == {"demo-1": "exit code 0", "demo-2": "exit code 0"}, run.output()[-3000:]
    finally:
        stop_process_group(process)


def test_a_logged_out_profile_is_auth_expired_and_not_restarted(runs: Runs, tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    with site_and_profiles(folder, logged_out=("stranger",)) as site:
        run = start(runs, site, folder, wait_ready=False)
        expired = wait_for(
            lambda: (c := run.child("stranger"))["state"] == "auth_expired" and c["pid"] is None and c,
            30,
            "the logged-out child to be stopped as auth_expired",
        )
        run.wait_state("demo-1", "ready", timeout=30)
        assert "logged out" in (expired["last_error"] or "")
        # It stays out: no restart loop, and the others serve.
        answer = run.openai(timeout=60).chat.completions.create(model="replica-pro", messages=QUESTION)
        assert answer.choices[0].message.content
        assert run.child("stranger") | {"seconds_in_state": 0} == expired | {"seconds_in_state": 0}
        assert run.child("stranger")["restarts"] == 0


def test_quota_is_per_model_and_names_it(runs: Runs, tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    with site_and_profiles(
        folder, "--quota-after", "1", "--first-token-ms", "50", "--token-ms", "10"
    ) as site:
        run = start(runs, site, folder)
        client = run.openai(timeout=60)
        served = [
            client.chat.completions.with_raw_response.create(model="replica-pro", messages=QUESTION).headers[
                "x-coordinator-child"
            ]
            for _ in range(2)
        ]
        assert sorted(served) == ["demo-1", "demo-2"]
        # Each profile has had its one run: the next hits the quota callout on the page.
        # Each profile has had its one run of replica-pro: the next is the site's quota answer.
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model="replica-pro", messages=QUESTION)
        assert refused.value.code == "quota_exhausted"
        assert "replica-pro" in refused.value.message
        assert int(refused.value.response.headers["retry-after"]) > 0
        assert [r["status"] for r in site.runs()][-2:] == ["quota", "quota"]
        # The quota is the model's: both accounts still answer another model.
        other = client.chat.completions.create(model="replica-flash", messages=QUESTION)
        assert (
            other.choices[0].message.content == "Replica replica-flash answers: what is the colour of the sky"
        )
        assert {c["id"]: c["state"] for c in run.children().values()} == {
            "demo-1": "ready",
            "demo-2": "ready",
        }


def test_a_killed_browser_restarts_its_child(runs: Runs, tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    with site_and_profiles(folder, "--first-token-ms", "50", "--token-ms", "10") as site:
        run = start(runs, site, folder)
        victim = run.child("demo-1")
        health = httpx.get(f"http://127.0.0.1:{victim['ports']['api']}/health", timeout=5).json()
        assert health["browser_connected"] is True
        browser_pid = health["browser_pid"]
        assert browser_pid and psutil.Process(browser_pid).ppid() != run.process.pid
        os.kill(browser_pid, signal.SIGKILL)
        restarted = wait_for(lambda: run.child("demo-1")["restarts"] >= 1 or None, 20, "the child to restart")
        assert restarted
        back = run.wait_state("demo-1", "ready", timeout=60)
        assert back["pid"] != victim["pid"]
        for _ in range(2):
            answer = run.openai(timeout=60).chat.completions.create(model="replica-pro", messages=QUESTION)
            assert answer.choices[0].message.content


def test_login_against_the_replica_saves_a_profile_that_run_accepts(
    tmp_path: Path, module_runs: Runs
) -> None:
    folder = tmp_path / "profiles"
    with site_and_profiles(folder) as site:
        saved = tmp_path / "saved"
        port = 19300 + os.getpid() % 500
        argv = [
            sys.executable, "-m", "coordinator", "login", "fresh", "--site-url", site.url, "--headless",
            "--saved-dir", str(saved), "--browser-port", str(port), "--timeout", "60",
        ]  # fmt: skip
        login = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            # The operator signs in in the login browser; here, through its debugging port.
            def signed_in() -> bool:
                with sync_playwright() as playwright:
                    try:
                        browser = playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{port}")
                    except Exception:
                        return False
                    pages = [p for c in browser.contexts for p in c.pages if "/login" in p.url]
                    if not pages:
                        return False
                    pages[0].fill('input[name="email"]', "someone@example.com")
                    pages[0].fill('input[name="password"]', "hunter2")
                    pages[0].click("button#sign-in")
                    return True

            wait_for(signed_in, 30, "the login page", interval=0.3)
            output, _ = login.communicate(timeout=60)
        finally:
            stop_process_group(login, sig=signal.SIGKILL)
        assert login.returncode == 0, output.decode()
        profile = saved / "fresh.json"
        assert oct(profile.stat().st_mode & 0o777) == "0o600"
        cookies = json.loads(profile.read_text())["cookies"]
        assert any(c["name"] == demo.REPLICA_COOKIE for c in cookies)
        # The saved file is a profile a later run accepts and serves with.
        active = tmp_path / "active"
        active.mkdir()
        profile.rename(active / "fresh.json")
        run = start(module_runs, site, active)
        assert run.openai(timeout=60).chat.completions.create(model="replica-pro", messages=QUESTION).choices


def test_a_browser_child_writes_its_session_back_without_a_restart(runs: Runs, tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    with site_and_profiles(folder, "--first-token-ms", "20", "--token-ms", "5") as site:
        before = {name: (folder / f"{name}.json").read_bytes() for name in site.sessions}
        run = start(runs, site, folder, "--write-back-requests", "1")
        client = run.openai(timeout=60)
        for _ in range(2):
            client.chat.completions.create(model="replica-flash", messages=QUESTION)
        written = [name for name in site.sessions if (folder / f"{name}.json").read_bytes() != before[name]]
        assert written, "no profile was written back after a request"
        for name in written:
            path = folder / f"{name}.json"
            state = json.loads(path.read_text())
            assert oct(path.stat().st_mode & 0o777) == "0o600"
            # The session lives on: its cookie, beside what the page set since (consent).
            assert site.sessions[name] in {c["value"] for c in state["cookies"]}
        # The watcher saw the child's own write and let it be.
        wait_for(lambda: run.events("profile_written_back"), 30, "the watcher to see the write-back")
        assert all(child["restarts"] == 0 for child in run.children().values())
