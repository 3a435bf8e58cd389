"""Fakes at the lifecycle's seams: the OS (launcher, processes), the clock, the /health prober.

With them a `Supervisor` runs its real decisions (exits, backoff, fatal, health, drain,
the profiles folder) without a single process or sleep: a test makes a fake process
exit, moves the clock, sets what /health answers, then calls `tick()` or `probe_due()`
and lets the event loop run the supervisor's tasks with `settle()`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import psutil

from coordinator.lifecycle.child import Child, ChildSpec
from coordinator.lifecycle.health import HealthReport, unreachable
from coordinator.lifecycle.ports import PortTriple
from coordinator.lifecycle.process import Launcher
from coordinator.lifecycle.profiles import Profile
from coordinator.lifecycle.roster import Roster

READY = HealthReport(status="ready", models=("mock",))


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeProcess:
    """Stands in for `asyncio.subprocess.Process`: a pid, an output pipe, an exit a test decides."""

    def __init__(self, pid: int, argv: Sequence[str], env: dict[str, str], *, ignores_term: bool) -> None:
        self.pid = pid
        self.argv = list(argv)
        self.env = env
        self.ignores_term = ignores_term
        self.returncode: int | None = None
        self.signals: list[signal.Signals] = []
        self.stdout = asyncio.StreamReader()
        self._exited = asyncio.Event()

    def say(self, line: str) -> None:
        self.stdout.feed_data(line.encode() + b"\n")

    def exit(self, code: int) -> None:
        """The process ends with `code` (negative: killed by that signal)."""
        if self.returncode is None:
            self.returncode = code
            self.stdout.feed_eof()
            self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode


@dataclass
class FakeLauncher(Launcher):
    """Spawns `FakeProcess`es; SIGTERM ends one (unless it ignores it), SIGKILL always does."""

    processes: list[FakeProcess] = field(default_factory=list)
    spawn_error: OSError | None = None  # raised by the next spawns while set
    ignores_term: bool = False  # the next processes ignore SIGTERM
    gate: asyncio.Event | None = None  # while set and not open, a spawn waits for it
    _pids: itertools.count[int] = field(default_factory=lambda: itertools.count(40001))

    async def spawn(
        self, argv: Sequence[str], *, cwd: Path, env: dict[str, str]
    ) -> asyncio.subprocess.Process:
        if self.gate is not None:
            await self.gate.wait()
        if self.spawn_error is not None:
            raise self.spawn_error
        process = FakeProcess(next(self._pids), argv, env, ignores_term=self.ignores_term)
        self.processes.append(process)
        return cast(asyncio.subprocess.Process, process)

    def signal_group(self, pid: int, sig: signal.Signals) -> bool:
        process = next((p for p in self.processes if p.pid == pid and p.returncode is None), None)
        if process is None:
            return False
        process.signals.append(sig)
        if sig is signal.SIGKILL or not process.ignores_term:
            process.exit(-sig.value)
        return True

    def descendants(self, pid: int) -> list[psutil.Process]:
        return []

    def kill(self, processes: Sequence[psutil.Process]) -> int:
        return 0

    def alive(self) -> list[FakeProcess]:
        return [p for p in self.processes if p.returncode is None]

    def of(self, port: int) -> FakeProcess:
        """The newest process started for the child whose API port is `port`."""
        flag = str(port)
        return next(p for p in reversed(self.processes) if flag in p.argv)


class FakeProber:
    """What each child's /health answers, by API port; `ready` unless a test says otherwise."""

    def __init__(self) -> None:
        self.answers: dict[int, HealthReport] = {}
        self.asked: list[int] = []
        self.cancelled: list[tuple[int, str]] = []

    def answer(self, port: int, report: HealthReport) -> None:
        self.answers[port] = report

    def hang(self, port: int) -> None:
        self.answers[port] = unreachable("no answer within 2s")

    async def __call__(self, port: int, timeout: float) -> HealthReport:
        self.asked.append(port)
        return self.answers.get(port, READY)

    async def cancel(self, port: int, request_id: str, timeout: float) -> bool:
        """The supervisor's `Canceller`: recorded; the child goes on answering as set."""
        self.cancelled.append((port, request_id))
        return True


async def settle(rounds: int = 20) -> None:
    """Let the supervisor's background tasks (spawns, exits, stops) run to their next wait."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def until(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Run the event loop until `condition()` holds, within `timeout` real seconds.

    Most conditions hold after a few turns of the loop; a stop that escalates to SIGKILL
    waits out its (tiny) real `stop_timeout`, hence the deadline rather than a count.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    turns = 0
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not so within {timeout:g}s")
        turns += 1
        await asyncio.sleep(0 if turns < 100 else 0.001)


def profile_file(folder: Path, name: str, session: str = "s1") -> Path:
    """A valid profile (Playwright storage state) in `folder`; a new `session` changes its content."""
    path = folder / f"{name}.json"
    cookie = {"name": "sid", "value": session, "domain": "aistudio.google.com", "path": "/"}
    path.write_text(json.dumps({"cookies": [cookie], "origins": []}))
    return path


def enlist_ready(roster: Roster, folder: Path, count: int, model: str = "mock") -> list[Child]:
    """`count` children on the roster, ready with `model`, API ports 1, 2, ... (no process)."""
    children = []
    for i in range(count):
        child = roster.enlist(
            ChildSpec(Profile(f"c{i}", folder / f"c{i}.json"), PortTriple(1 + i, 100 + i, 200 + i))
        )
        child.models = (model,)
        child.start("test")
        child.ready("test")
        children.append(child)
    return children
