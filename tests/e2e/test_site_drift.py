"""A page that changed is seen at once: a renamed element in /health, `coordinator status`,
the metrics and `coordinator check-site`, against the replica with one element renamed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import openai
import pytest

from child.engines.browser import find_chromium
from tests.support.coordinator import COORDINATOR, Runs
from tests.support.processes import wait_for
from tests.support.sites import site_and_profiles, start

pytestmark = pytest.mark.skipif(
    find_chromium(None, os.environ) is None, reason="no Chromium: `bash scripts/setup.sh` installs it"
)


def test_a_renamed_element_shows_everywhere_a_user_looks(runs: Runs, tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    # The empty chat's marker renamed (ms-zero-state → something else): the page still works.
    with site_and_profiles(
        folder, "--first-token-ms", "20", "--token-ms", "5", "--drift", "zero_state"
    ) as site:
        run = start(runs, site, folder)
        wait_for(
            lambda: all(c["selectors_missing"] == ["zero_state"] for c in run.children().values()),
            30,
            "the drift to reach the children's health",
        )
        answer = run.openai(timeout=60).chat.completions.create(
            model="replica-flash", messages=[{"role": "user", "content": "still there?"}]
        )
        assert answer.choices[0].message.content == site.last_run()["answer"]
        shown = run.status().stdout
        assert "demo-1: selectors missing: zero_state" in shown and "coordinator check-site" in shown
        assert (
            'coordinator_child_selectors_missing{profile="demo-1",selector="zero_state"} 1.0'
            in run.get("/metrics").text
        )

        checked = subprocess.run(
            [*COORDINATOR, "check-site", "--profile", str(folder / "demo-1.json"), "--site-url", site.url,
             "--site-config", str(site.site_config), "--ca-file", str(tmp_path / "capture-ca.pem"),
             "--engine", "chromium", "--prompt", "answer in markdown"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        report = checked.stdout
        assert "MISSING" in report and "zero_state" in report.split("MISSING", 1)[1].splitlines()[0]
        assert "answer read from the network" in report
        assert "network: HTTP 200, gzip" in report and "finish stop" in report


def test_a_broken_step_names_itself_to_the_client(runs: Runs, tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    with site_and_profiles(folder, "--drift", "prompt") as site:
        run = start(runs, site, folder)
        with pytest.raises(openai.APIStatusError) as failed:
            run.openai(timeout=60, max_retries=0).chat.completions.create(
                model="replica-flash", messages=[{"role": "user", "content": "hello"}]
            )
        assert failed.value.status_code == 502
        assert "step prompt: selector prompt (`" in failed.value.message
        logged = "".join(path.read_text() for path in run.log_dir.glob("demo-*.log"))
        assert '"driver_failed"' in logged and '"step": "prompt"' in logged
