"""Real child processes on real sockets: spawning one, talking to it, killing its process group."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.support.processes import free_port, stop_process_group, wait_for

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 30.0
PROFILE_TEXT = '{"cookies": [], "origins": []}'


@dataclass
class ChildProcess:
    proc: subprocess.Popen[bytes]
    port: int
    token: str
    profile: str
    workdir: Path
    _clients: list[httpx.Client] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stdout_path(self) -> Path:
        return self.workdir / "stdout.log"

    @property
    def stderr_path(self) -> Path:
        return self.workdir / "stderr.log"

    def output(self) -> str:
        return self.stdout_path.read_text() + self.stderr_path.read_text()

    def http(self, *, token: str | None = "", timeout: float = 5.0) -> httpx.Client:
        """A raw client; token "" means the right one, None means no token header."""
        headers = {} if token is None else {"X-Child-Token": token or self.token}
        client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        self._clients.append(client)
        return client

    def openai(self, *, timeout: float = 10.0) -> OpenAI:
        return OpenAI(
            base_url=f"{self.base_url}/v1",
            api_key="unused",
            default_headers={"X-Child-Token": self.token},
            max_retries=0,
            timeout=timeout,
        )

    def health(self) -> httpx.Response:
        return httpx.get(f"{self.base_url}/health", timeout=2.0)

    def try_health(self) -> dict[str, Any] | None:
        try:
            body: dict[str, Any] = self.health().json()
            return body
        except httpx.TransportError:
            return None

    def wait_status(self, status: str, timeout: float = READY_TIMEOUT_S) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            if self.proc.poll() is not None:
                pytest.fail(f"child exited with {self.proc.returncode}:\n{self.output()}")
            body = self.try_health()
            return body if body is not None and body["status"] == status else None

        result: dict[str, Any] = wait_for(check, timeout, f"/health status {status!r}")
        return result

    def wait_for(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        return wait_for(check, timeout, what)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"child still running after {timeout}s")

    def kill(self) -> None:
        for client in self._clients:
            client.close()
        stop_process_group(self.proc, timeout=3)


SpawnChild = Callable[..., ChildProcess]


def _child_env(env: Mapping[str, str] | None, token: str | None) -> dict[str, str]:
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MOCK_") and key != "CHILD_TOKEN"
    }
    base["PYTHONPATH"] = str(REPO)
    if token is not None:
        base["CHILD_TOKEN"] = token
    base.update(env or {})
    return base


def spawner(root: Path, children: list[ChildProcess]) -> SpawnChild:
    def spawn(
        *,
        env: Mapping[str, str] | None = None,
        engine: str = "mock",
        profile: str = "alpha",
        profile_text: str | None = PROFILE_TEXT,
        token: str | None = "",
        wait_ready: bool = True,
        extra_args: Sequence[str] = (),
    ) -> ChildProcess:
        workdir = root / f"child-{len(children)}"
        workdir.mkdir(parents=True)
        profile_path = workdir / f"{profile}.json"
        if profile_text is not None:
            profile_path.write_text(profile_text)
        token = secrets.token_hex(16) if token == "" else token
        port = free_port()
        args = [
            sys.executable, "-m", "child",
            "--profile", str(profile_path),
            "--api-port", str(port),
            "--stream-port", str(free_port()),
            "--browser-port", str(free_port()),
            "--engine", engine,
            *extra_args,
        ]  # fmt: skip
        with (workdir / "stdout.log").open("wb") as out, (workdir / "stderr.log").open("wb") as err:
            proc = subprocess.Popen(
                args,
                cwd=REPO,
                env=_child_env(env, token),
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        child = ChildProcess(proc=proc, port=port, token=token or "", profile=profile, workdir=workdir)
        children.append(child)
        if wait_ready:
            child.wait_status("ready")
        return child

    return spawn
