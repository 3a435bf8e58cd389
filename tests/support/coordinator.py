"""A real `coordinator run` with mock children on real sockets, started and stopped for a test.

`Runs` starts coordinators and, on `close`, stops each with its process group and a sweep
of its descendants, so that no test leaves a port or a process behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from openai import OpenAI

from tests.support.processes import free_port, free_port_bases, stop_process_group, wait_for

COORDINATOR = [sys.executable, "-m", "coordinator"]
# How long a helper waits for a state that should come: long enough for a machine loaded by
# the suite's other workers (a wait that is met sooner costs no more).
WAIT_S = 30.0
# Fast lifecycle settings so that tests wait on conditions, not on defaults meant for browsers.
FAST = [
    "--health-interval", "0.3",
    "--health-timeout", "1",
    "--restart-backoff", "0.2",
    "--restart-backoff-max", "1",
    "--start-timeout", "15",
    "--grace-period", "5",
    "--stop-timeout", "3",
    "--log-format", "json",
]  # fmt: skip


def write_profile(folder: Path, name: str, cookie_value: str = "demo") -> Path:
    path = folder / f"{name}.json"
    state = {
        "cookies": [{"name": "sid", "value": cookie_value, "domain": "127.0.0.1", "path": "/"}],
        "origins": [],
    }
    path.write_text(json.dumps(state))
    return path


@dataclass
class Coordinator:
    process: subprocess.Popen[bytes]
    port: int
    profiles: Path
    log_dir: Path
    output_path: Path
    child_ids: list[str] = field(default_factory=list)
    api_key: str | None = None  # sent by the helpers below (and the openai client) when set

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def openai(self, **kwargs: Any) -> OpenAI:
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 30)
        kwargs.setdefault("api_key", self.api_key or "unused")
        return OpenAI(base_url=f"{self.url}/v1", **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("timeout", 10)
        kwargs.setdefault("headers", self._auth())
        return httpx.get(self.url + path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("timeout", 30)
        kwargs.setdefault("headers", self._auth())
        return httpx.post(self.url + path, **kwargs)

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def children(self) -> dict[str, dict[str, Any]]:
        data = self.get("/admin/children").json()["data"]
        return {child["id"]: child for child in data}

    def child(self, child_id: str) -> dict[str, Any]:
        return self.children()[child_id]

    def wait_state(self, child_id: str, state: str, timeout: float = WAIT_S) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            child = self.child(child_id)
            return child if child["state"] == state else None

        result: dict[str, Any] = wait_for(reached, timeout, f"child {child_id} to be {state}")
        return result

    def wait_all_ready(self, timeout: float = WAIT_S) -> None:
        wait_for(
            lambda: all(c["state"] == "ready" for c in self.children().values()),
            timeout,
            "every child to be ready",
        )

    def status(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`coordinator status` against this run, as a user types it."""
        clean = {name: value for name, value in os.environ.items() if not name.startswith("COORDINATOR_")}
        return subprocess.run(
            [*COORDINATOR, "status", "--url", self.url, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean,
        )

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.output().splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("event") == name:
                    found.append(event)
        return found

    def descendants(self) -> list[psutil.Process]:
        try:
            found: list[psutil.Process] = psutil.Process(self.process.pid).children(recursive=True)
            return found
        except psutil.Error:
            return []


StartCoordinator = Callable[..., Coordinator]


class Runs:
    """Starts coordinators for a test (or a module) and kills every one of them at the end."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.started: list[Coordinator] = []

    def start(
        self,
        profiles: list[str] | tuple[str, ...] = ("alpha", "beta"),
        *,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        wait_ready: bool = True,
        profiles_dir: Path | None = None,
        api_key: str | None = None,
        wrap: list[str] | None = None,
    ) -> Coordinator:
        """`wrap`: a command that runs the coordinator's argv (e.g. in a namespace); it must exec it."""
        root = self.tmp_path_factory.mktemp("run")
        folder = profiles_dir or root / "profiles"
        folder.mkdir(exist_ok=True)
        for name in profiles:
            write_profile(folder, name)
        api, stream, browser = free_port_bases(max(1, len(profiles)) + 1, ranges=3)
        port = free_port()
        argv = [
            *(wrap or []),
            *COORDINATOR, "run",
            "--profiles", str(folder),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--base-api-port", str(api),
            "--base-stream-port", str(stream),
            "--base-browser-port", str(browser),
            "--engine", "mock",
            "--log-dir", str(root / "logs"),
            "--data-dir", str(root / "data"),
            *FAST,
            *(args or []),
        ]  # fmt: skip
        output_path = root / "coordinator.out"
        with output_path.open("wb") as output:
            process = subprocess.Popen(
                argv,
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        coordinator = Coordinator(process, port, folder, root / "logs", output_path, list(profiles), api_key)
        self.started.append(coordinator)
        wait_for(lambda: _answers(coordinator), WAIT_S, "the coordinator to listen")
        if wait_ready:
            coordinator.wait_all_ready()
        return coordinator

    def close(self) -> None:
        for coordinator in self.started:
            stop_process_group(coordinator.process)
            if os.environ.get("SHOW_COORDINATOR_OUTPUT"):
                print(coordinator.output()[-6000:])


def _answers(coordinator: Coordinator) -> bool:
    if coordinator.process.poll() is not None:
        raise AssertionError(f"coordinator exited early:\n{coordinator.output()[-3000:]}")
    try:
        coordinator.get("/live")
    except httpx.HTTPError:
        return False
    return True
