"""The embedded default: a local replica of the site and profiles logged in to it.

`coordinator run --demo` runs the replica (`python -m child.replica`, a stand-in for the
AI Studio page) on a free local port, writes two demo profiles holding session cookies
that the replica accepts, and runs real browser children against it, so a newcomer sees
real answers through real browsers with no account. With `--engine mock` the children
are mock ones and the replica is not needed.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from coordinator.lifecycle.process import die_with_parent, stop_process_group

DEMO_PROFILES = ("demo-1", "demo-2")
REPLICA_COOKIE = "replica_session"
# A visible pace for mock children, so that streaming shows as streaming.
MOCK_ENV = {"MOCK_FIRST_TOKEN_MS": "300", "MOCK_TOKEN_MS": "60"}
REPLICA_START_SECONDS = 20.0


class DemoError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Replica:
    url: str
    process: subprocess.Popen[bytes]
    # What the children need to read its answers: where they come from, and its CA.
    site_config: Path


def write_profiles(folder: Path, host: str = "127.0.0.1") -> dict[str, str]:
    """Demo profiles, each a storage state with its own fresh session cookie; name → cookie value."""
    folder.mkdir(parents=True, exist_ok=True)
    sessions = {}
    for name in DEMO_PROFILES:
        value = f"{name}-{secrets.token_urlsafe(12)}"
        cookie = {"name": REPLICA_COOKIE, "value": value, "domain": host, "path": "/", "expires": -1,
                  "httpOnly": True, "secure": False, "sameSite": "Lax"}  # fmt: skip
        path = folder / f"{name}.json"
        path.write_text(json.dumps({"cookies": [cookie], "origins": []}, indent=2))
        path.chmod(0o600)
        sessions[name] = value
    return sessions


@contextlib.contextmanager
def replica(
    sessions: list[str],
    log_path: Path,
    options: tuple[str, ...] = (),
    ports: tuple[int, int] | None = None,
) -> Iterator[Replica]:
    """The replica in a process of its own that dies with us; stopped on exit.

    `options` are more of its flags (`--token-ms 50`, `--quota-after 2`, …). `ports`: its
    page's and its answer endpoint's, when the caller keeps its own free ports (the tests'
    workers each pick from their own share); else the kernel's choice.
    """
    port, api_port = ports or (_free_port(), _free_port())
    folder = Path(tempfile.mkdtemp(prefix="coordinator-replica-"))
    ca_file = folder / "replica-ca.pem"
    argv = [sys.executable, "-m", "child.replica", "--host", "127.0.0.1", "--port", str(port),
            "--api-port", str(api_port), "--ca-file", str(ca_file)]  # fmt: skip
    for session in sessions:
        argv += ["--session", session]
    argv += options
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent()
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, process, log_path)
        yield Replica(url, process, write_site_config(folder / "site.toml", api_port, ca_file))
    finally:
        stop_process_group(process, timeout=5)
        shutil.rmtree(folder, ignore_errors=True)


def write_site_config(path: Path, api_port: int, ca_file: Path) -> Path:
    """A --site-config for the replica: its answers come from another origin, over HTTPS."""
    path.write_text(f'answer_host = "localhost:{api_port}"\nanswer_ca = {json.dumps(str(ca_file))}\n')
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_serving(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + REPLICA_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"the demo site (replica) exited with code {process.returncode}; see {log_path}")
        try:
            httpx.get(f"{url}/api/ListModels", timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise DemoError(
        f"the demo site (replica) did not answer within {REPLICA_START_SECONDS:g}s; see {log_path}"
    )
