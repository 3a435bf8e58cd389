"""The deployment: the project's supervisord.conf and docker/ files, checked without Docker.

The real `supervisord` (from the venv) runs the project's `supervisord.conf` with the
container's own shutdown settings, read from the `ENV` lines of docker/Dockerfile; only
the paths, the ports and the engine (mock children) are the test's. It must serve, drain
and stop the whole process tree within its stop window. hadolint lints the Dockerfile,
and the files that must agree with one another (Dockerfile, compose file, .env.example,
supervisord.conf, the CLI) are checked against each other.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import typer.main
from openai import OpenAI

from coordinator.cli.main import app
from tests.support.coordinator import write_profile
from tests.support.processes import free_port, free_port_bases, wait_for

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SUPERVISORD_CONF = ROOT / "supervisord.conf"
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "docker-compose.yml"
ENV_EXAMPLE = DOCKER / ".env.example"
DOCKER_STOP_DEFAULT = 10.0  # seconds `docker stop` waits before SIGKILL
HTTP_CLOSE = 1.0  # HTTP_CLOSE_SECONDS in coordinator/server.py


def dockerfile_env() -> dict[str, str]:
    """The variables the image sets: every `ENV NAME=VALUE ...` of the Dockerfile."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    env: dict[str, str] = {}
    for line in text.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def env_example() -> dict[str, str]:
    """NAME → value of every `NAME=value` or `# NAME=value` line of docker/.env.example."""
    found = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if match := re.fullmatch(r"#?\s*([A-Z][A-Z0-9_]*)=(.*)", line.strip()):
            found[match[1]] = match[2]
    return found


def supervisord_conf() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    parser.read(SUPERVISORD_CONF)
    return parser


def seconds(value: str) -> float:
    """'10s', '1m30s' or '8' → seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "": 1}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s|)", value.strip())
    assert parts, f"not a duration: {value!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


@dataclass
class Supervisord:
    process: subprocess.Popen[bytes]
    port: int
    root: Path
    output_path: Path
    env: dict[str, str]
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stopwaitsecs(self) -> float:
        return float(self.env["SUPERVISORD_STOPWAITSECS"])

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def tree(self) -> list[psutil.Process]:
        """supervisord's live descendants; each one is remembered for the teardown's sweep."""
        try:
            found: list[psutil.Process] = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            return []
        for proc in found:
            self.seen.setdefault(proc.pid, proc)
        return found

    def health(self) -> dict[str, Any] | None:
        if self.process.poll() is not None:
            raise AssertionError(f"supervisord exited early:\n{self.output()[-3000:]}")
        try:
            response = httpx.get(self.url + "/health", timeout=5)
        except httpx.HTTPError:
            return None
        summary: dict[str, Any] = response.json()
        return summary if response.status_code == 200 else None

    def openai(self) -> OpenAI:
        return OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0, timeout=30)

    def kill(self) -> None:
        """SIGKILL supervisord's group and every process group it ever had below it."""
        self.tree()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        for proc in self.seen.values():
            with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
                if alive(proc):
                    group = os.getpgid(proc.pid)
                    if group != os.getpgrp():
                        os.killpg(group, signal.SIGKILL)
                    proc.kill()


class Runs:
    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.started: list[Supervisord] = []

    def start(self, profiles: tuple[str, ...] = ("alpha", "beta"), **extra_env: str) -> Supervisord:
        root = self.tmp_path_factory.mktemp("supervisord")
        folder = root / "profiles"
        folder.mkdir()
        for name in profiles:
            write_profile(folder, name)
        api, stream, browser = free_port_bases(max(1, len(profiles)) + 1, ranges=3)
        port = free_port()
        inherited = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("COORDINATOR_", "SUPERVISORD_", "MOCK_"))
        }
        env = {
            **inherited,
            # The container's settings (the shutdown budget among them), then the test's own.
            **dockerfile_env(),
            "COORDINATOR_BIN": str(VENV_BIN / "coordinator"),
            "COORDINATOR_WORKDIR": str(root),
            "SUPERVISORD_PIDFILE": str(root / "supervisord.pid"),
            "COORDINATOR_PROFILES": str(folder),
            "COORDINATOR_LOG_DIR": str(root / "logs"),
            "COORDINATOR_ENGINE": "mock",
            "COORDINATOR_HOST": "127.0.0.1",
            "COORDINATOR_PORT": str(port),
            "COORDINATOR_BASE_API_PORT": str(api),
            "COORDINATOR_BASE_STREAM_PORT": str(stream),
            "COORDINATOR_BASE_BROWSER_PORT": str(browser),
            "COORDINATOR_HEALTH_INTERVAL": "0.3",
            "COORDINATOR_LOG_FORMAT": "json",
            **extra_env,
        }
        output_path = root / "supervisord.out"
        # Append mode: supervisord reopens /dev/stdout for its programs, and every writer
        # must append, or they overwrite each other in a regular file.
        with output_path.open("ab") as output:
            process = subprocess.Popen(
                [str(VENV_BIN / "supervisord"), "-c", str(SUPERVISORD_CONF)],
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        run = Supervisord(process, port, root, output_path, env)
        self.started.append(run)
        return run

    def close(self) -> None:
        for run in self.started:
            run.kill()
            if os.environ.get("SHOW_COORDINATOR_OUTPUT"):
                print(run.output()[-6000:])


@pytest.fixture
def supervisord(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    runs = Runs(tmp_path_factory)
    try:
        yield runs
    finally:
        runs.close()


def serving(run: Supervisord, count: int = 2) -> dict[str, Any]:
    def all_serving() -> dict[str, Any] | None:
        summary = run.health()
        return summary if summary and summary["children"]["serving"] == count else None

    summary: dict[str, Any] = wait_for(
        all_serving, 30, f"/health to answer 200 with {count} children serving"
    )
    return summary


def stop(run: Supervisord) -> float:
    """SIGTERM supervisord, as tini does on `docker stop`; returns the seconds it took to exit."""
    started = time.monotonic()
    run.process.send_signal(signal.SIGTERM)
    try:
        run.process.wait(run.stopwaitsecs + 5)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"supervisord still runs after SIGTERM:\n{run.output()[-3000:]}") from None
    return time.monotonic() - started


def test_serves_then_stops_the_whole_tree_within_the_stop_window(supervisord: Runs) -> None:
    run = supervisord.start()
    serving(run)

    answer = run.openai().chat.completions.create(
        model="mock", messages=[{"role": "user", "content": "hello from supervisord"}]
    )
    assert answer.choices[0].message.content == "echo: hello from supervisord"

    # The image's HEALTHCHECK command, as Docker runs it, passes.
    check = healthcheck_command()
    result = subprocess.run(check, env=run.env, capture_output=True, timeout=10)
    assert result.returncode == 0, result.stderr.decode()

    children = {child["pid"] for child in httpx.get(run.url + "/admin/children", timeout=5).json()["data"]}
    tree = run.tree()
    commands = {proc.pid: " ".join(proc.cmdline()) for proc in tree}
    coordinators = [pid for pid, command in commands.items() if re.search(r"/coordinator run\b", command)]
    assert len(coordinators) == 1, commands
    assert len(children) == 2 and children <= set(commands), (children, commands)
    assert all(psutil.Process(pid).ppid() == coordinators[0] for pid in children)

    took = stop(run)

    assert took < run.stopwaitsecs, f"supervisord took {took:.1f}s, its stop window is {run.stopwaitsecs}s"
    assert run.process.returncode == 0
    output = run.output()
    assert "stopped: coordinator (exit status 0)" in output, output[-3000:]
    assert "terminated by SIGKILL" not in output, output[-3000:]
    wait_for(
        lambda: not [proc for proc in tree if alive(proc)],
        30,
        f"every process of the tree to be gone: {[p.pid for p in tree if alive(p)]}",
    )
    assert not (run.root / "supervisord.pid").exists()
    assert subprocess.run(check, env=run.env, capture_output=True, timeout=10).returncode != 0


def test_sigterm_lets_an_in_flight_answer_finish(supervisord: Runs) -> None:
    # A 12-token answer at 150 ms a token: about 1.8 s, inside the image's grace period.
    run = supervisord.start(MOCK_FIRST_TOKEN_MS="150", MOCK_TOKEN_MS="150")
    serving(run)
    assert float(run.env["COORDINATOR_GRACE_PERIOD"]) > 2.5
    words = "one two three four five six seven eight nine ten eleven"

    stream = run.openai().chat.completions.create(
        model="mock", stream=True, messages=[{"role": "user", "content": words}]
    )
    pieces = []
    signalled_at = None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
            if signalled_at is None:
                signalled_at = time.monotonic()
                run.process.send_signal(signal.SIGTERM)
                # New work is refused while the answer in hand goes on.
                wait_for(
                    lambda: httpx.get(run.url + "/ready", timeout=2).status_code == 503, 2, "/ready to be 503"
                )

    assert "".join(pieces) == "echo: " + words
    run.process.wait(run.stopwaitsecs + 5)
    assert signalled_at is not None and time.monotonic() - signalled_at < run.stopwaitsecs
    assert "stopped: coordinator (exit status 0)" in run.output()
    events = json_events(run.output())
    assert any(e.get("event") == "draining" and e.get("in_flight") == 1 for e in events), events[-10:]
    assert not any(e.get("event") == "drain_incomplete" for e in events)


def json_events(text: str) -> list[dict[str, object]]:
    """Every JSON object in supervisord's output. It relays the coordinator's stderr in chunks
    that need not end on a line, so two events can share a line: scan, don't split."""
    decoder = json.JSONDecoder()
    events = []
    index = text.find("{")
    while index != -1:
        try:
            event, end = decoder.raw_decode(text, index)
        except ValueError:
            index = text.find("{", index + 1)
            continue
        if isinstance(event, dict):
            events.append(event)
        index = text.find("{", end)
    return events


def test_a_coordinator_that_cannot_start_stops_supervisord(supervisord: Runs) -> None:
    run = supervisord.start(profiles=())  # no profile: the coordinator exits with code 2

    def exited() -> bool:
        run.tree()
        return run.process.poll() is not None

    wait_for(exited, 60, "supervisord to give up and exit", interval=0.2)
    output = run.output()
    assert "coordinator: no valid profile" in output
    assert "gave up: coordinator entered FATAL state" in output
    wait_for(lambda: not [proc for proc in run.seen.values() if alive(proc)], 30, "no process left")


def healthcheck_command() -> list[str]:
    """The Dockerfile's `HEALTHCHECK ... CMD [...]`, with this venv's python."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    match = re.search(r"^HEALTHCHECK .*?\bCMD (\[.*\])\s*$", text, re.MULTILINE)
    assert match, "the Dockerfile has no HEALTHCHECK in exec form"
    command: list[str] = json.loads(match[1])
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_sets_every_variable_supervisord_conf_needs() -> None:
    settings = [line for line in SUPERVISORD_CONF.read_text().splitlines() if not line.startswith(";")]
    needed = set(re.findall(r"%\(ENV_([A-Za-z0-9_]+)\)s", "\n".join(settings)))
    assert needed, "supervisord.conf reads no variable"
    assert needed <= set(dockerfile_env()), needed - set(dockerfile_env())


def test_supervisord_conf_stops_by_group_and_logs_to_the_container_output() -> None:
    conf = supervisord_conf()
    assert conf.get("supervisord", "nodaemon") == "true"
    program = dict(conf.items("program:coordinator"))
    assert program["command"] == "%(ENV_COORDINATOR_BIN)s run"
    assert program["stopsignal"] == "TERM"
    assert program["stopasgroup"] == program["killasgroup"] == "true"
    assert program["stopwaitsecs"] == "%(ENV_SUPERVISORD_STOPWAITSECS)s"
    for stream in ("stdout", "stderr"):
        assert program[f"{stream}_logfile"] == f"/dev/{stream}"
        assert program[f"{stream}_logfile_maxbytes"] == "0"


def test_the_shutdown_fits_in_dockers_stop_window() -> None:
    image = dockerfile_env()
    grace = float(image["COORDINATOR_GRACE_PERIOD"])
    child_stop = float(image["COORDINATOR_STOP_TIMEOUT"])
    stopwaitsecs = float(image["SUPERVISORD_STOPWAITSECS"])
    compose = re.search(r"^\s*stop_grace_period:\s*(\S+)", COMPOSE.read_text(), re.MULTILINE)
    assert compose, "docker-compose.yml sets no stop_grace_period"
    default = re.fullmatch(r"\$\{STOP_GRACE_PERIOD:-([^}]+)\}", compose[1])
    window = seconds(default[1] if default else compose[1])

    assert grace + HTTP_CLOSE + child_stop < stopwaitsecs < window <= DOCKER_STOP_DEFAULT
    assert seconds(env_example()["STOP_GRACE_PERIOD"]) == window


def test_compose_mounts_what_the_image_reads() -> None:
    image = dockerfile_env()
    compose = COMPOSE.read_text()
    mounts = dict(re.findall(r"^\s*-\s*([^\s:]+):(/[^\s:]+)", compose, re.MULTILINE))
    assert mounts.get("../auth_profiles") == "/app/auth_profiles"
    # Writable: each child writes its refreshed cookies back to its profile file.
    assert "../auth_profiles:/app/auth_profiles:ro" not in compose
    assert mounts.get("capture") == str(
        Path(image["COORDINATOR_CA_FILE"]).parent
    )  # the CA outlives a restart
    assert Path(image["COORDINATOR_PROFILES"]).is_relative_to(mounts["../auth_profiles"])
    assert mounts.get("logs") == image["COORDINATOR_LOG_DIR"]
    assert mounts.get("data") == image["COORDINATOR_DATA_DIR"]  # the ledger outlives the container
    assert re.search(r"^\s*env_file:\s*\.env\s*$", compose, re.MULTILINE)
    assert re.search(r'^\s*-\s*"\$\{PUBLISH_PORT:-2048\}:2048"', compose, re.MULTILINE)
    assert re.findall(r"^EXPOSE (.*)$", DOCKERFILE.read_text(), re.MULTILINE) == ["2048"]


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def _same(a: str, b: str) -> bool:
    with contextlib.suppress(ValueError):
        return float(a) == float(b)
    return a == b


def test_env_example_lists_every_setting_with_the_value_in_force() -> None:
    run = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    image = dockerfile_env()
    listed = env_example()
    settings = {param.envvar: param.default for param in run.params if param.envvar}
    assert "COORDINATOR_API_KEY" in settings and "COORDINATOR_GRACE_PERIOD" in settings

    missing = sorted(set(settings) - set(listed))
    assert not missing, f"docker/.env.example lacks {missing}"
    for name, default in settings.items():
        expected = image.get(name, _as_text(default))
        assert _same(listed[name], expected), f"{name}={listed[name]} in .env.example, in force: {expected}"
    for name, value in listed.items():
        if name in image:
            assert _same(value, image[name]), f"{name}={value} in .env.example, {image[name]} in the image"
    # Nothing is set by default: the file documents, .env overrides.
    assert not [line for line in ENV_EXAMPLE.read_text().splitlines() if re.match(r"[A-Z]", line)]
