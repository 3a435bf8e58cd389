"""The replica and Chromium children under a real coordinator, for the browser e2e tests.

The replica runs in a process of its own (`python -m child.replica`, as `--demo` runs
it) with demo profiles holding its session cookies; the coordinator gets the replica's
site config, so its children read the answers from the replica's HTTPS answer origin.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from coordinator.cli import demo
from tests.support.coordinator import Coordinator, Runs
from tests.support.processes import free_port, wait_for


@dataclass
class Site:
    url: str
    sessions: dict[str, str]
    site_config: Path

    def runs(self) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = httpx.get(f"{self.url}/__replica/runs", timeout=5).json()
        return runs

    def last_run(self) -> dict[str, Any]:
        return self.runs()[-1]

    def last_reported_run(self, timeout: float = 30) -> dict[str, Any]:
        """The last run once its page has reported what it rendered: the report is a beacon
        sent after the run ends, so it can land after the client already has its answer."""

        def reported() -> dict[str, Any] | None:
            run = self.last_run()
            return run if run["reported"] else None

        run: dict[str, Any] = wait_for(reported, timeout, "the page's report of its run")
        return run


@contextlib.contextmanager
def site_and_profiles(folder: Path, *options: str, logged_out: tuple[str, ...] = ()) -> Iterator[Site]:
    """The replica, and demo profiles in `folder`; those in `logged_out` hold no session cookie."""
    sessions = demo.write_profiles(folder)
    for name in logged_out:
        (folder / f"{name}.json").write_text(json.dumps({"cookies": [], "origins": []}))
    ports = (free_port(), free_port())
    with demo.replica(list(sessions.values()), folder.parent / "replica.log", options, ports) as replica:
        yield Site(replica.url, sessions, replica.site_config)


def start(runs: Runs, site: Site, folder: Path, *args: str, wait_ready: bool = True) -> Coordinator:
    return runs.start(
        (),
        profiles_dir=folder,
        args=[
            "--engine",
            "chromium",
            "--site-url",
            site.url,
            "--site-config",
            str(site.site_config),
            "--ca-file",
            str(folder.parent / "capture-ca.pem"),
            "--start-timeout",
            "60",
            *args,
        ],
        wait_ready=wait_ready,
    )
