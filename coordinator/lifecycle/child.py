"""One supervised child process, seen from the coordinator: its state and its process.

`Child.transition` is the only place a state changes: it checks the move, logs old →
new with the reason, and tells the listener (the pool wakes waiters on it). Spawning,
stopping and capturing output are here too; deciding *when* belongs to the supervisor.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from coordinator.lifecycle.ports import PortTriple
from coordinator.lifecycle.process import Launcher
from coordinator.lifecycle.profiles import Profile
from coordinator.lifecycle.states import TRANSITIONS, ChildState, InvalidTransition

log = structlog.get_logger("coordinator.lifecycle.child")

LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 3

StateListener = Callable[["Child", ChildState, ChildState], None]
_READY, _BUSY = ChildState.READY, ChildState.BUSY


@dataclass(frozen=True, slots=True)
class ChildSpec:
    profile: Profile
    ports: PortTriple

    @property
    def id(self) -> str:
        return self.profile.name


def backoff_delay(failures: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential in the failures in a row, capped, with jitter so children don't restart in step."""
    delay = min(cap, base * 2.0 ** max(0, failures - 1))
    jitter: float = (rng or random).uniform(0.5, 1.0)
    return delay * jitter


class Child:
    def __init__(
        self,
        spec: ChildSpec,
        *,
        log_dir: Path,
        on_change: StateListener | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.id = spec.id
        self.state = ChildState.STOPPED
        self.clock = clock
        self.state_since = clock()
        self.on_change = on_change
        self.process: asyncio.subprocess.Process | None = None
        self.work_dir = log_dir / "work" / spec.id
        self.log_path = log_dir / f"{spec.id}.log"
        self._output = RotatingLog(self.log_path, LOG_FILE_BYTES, LOG_FILE_BACKUPS)
        self.last_output = ""
        # Lifecycle bookkeeping, read by the supervisor.
        self.started_at: float | None = None
        self.ready_at: float | None = None
        self.next_start_at: float | None = None
        self.cooldown_until: float | None = None
        self.cooldown_reason: str | None = None  # "quota" or "ejected"
        self.failures = 0  # exits in a row; reset after a healthy run
        self.start_failures = 0  # starts in a row that never became ready
        self.health_misses = 0
        self.restarts = 0
        self.restart_requested = False
        self.last_error: str | None = None
        self.kill_reason: str | None = None  # why we killed the current process, if we did
        # Scheduling bookkeeping, read by the pool.
        self.models: tuple[str, ...] = ()
        self.request_id: str | None = None
        self.served = 0
        self.errors_in_row = 0
        self.ejections = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def transition(self, new: ChildState, reason: str) -> None:
        old = self.state
        if new is old:
            return
        if new not in TRANSITIONS[old]:
            raise InvalidTransition(f"child {self.id}: {old} → {new} is not allowed ({reason})")
        self.state = new
        self.state_since = self.clock()
        if new is ChildState.READY:
            self.ready_at = self.ready_at or self.state_since
            self.start_failures = 0
        # ready ⇄ busy happens twice a request, and the request line names the child already.
        emit = log.debug if (old is _READY and new is _BUSY) or (old is _BUSY and new is _READY) else log.info
        emit("child_state", child=self.id, pid=self.pid, old=old.value, new=new.value, reason=reason)
        if self.on_change is not None:
            self.on_change(self, old, new)

    async def spawn(self, launcher: Launcher, argv: Sequence[str], env: dict[str, str], reason: str) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.process = await launcher.spawn(argv, cwd=self.work_dir, env=env)
        self.started_at = self.clock()
        self.ready_at = None
        self.kill_reason = None
        self.health_misses = 0
        self.next_start_at = None
        self.transition(ChildState.STARTING, reason)

    async def pump_output(self, process: asyncio.subprocess.Process) -> None:
        """Copy the child's stdout and stderr into its rotating log until the pipe closes."""
        assert process.stdout is not None
        while data := await process.stdout.read(65536):
            self._output.write(data)
            lines = data.rstrip().rsplit(b"\n", 1)
            if lines[-1]:
                self.last_output = lines[-1][-500:].decode("utf-8", "replace")

    async def stop(
        self, launcher: Launcher, timeout: float, process: asyncio.subprocess.Process | None = None
    ) -> None:
        """SIGTERM the group, SIGKILL it after `timeout`, then kill any descendant that escaped.

        `process`: the one to stop, if not the current one.
        """
        process = process or self.process
        if process is None or process.returncode is not None:
            return
        leftovers = launcher.descendants(process.pid)
        launcher.signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            log.warning(
                "child_kill", child=self.id, pid=process.pid, reason=f"no exit {timeout:g}s after SIGTERM"
            )
            launcher.signal_group(process.pid, signal.SIGKILL)
            await process.wait()
        # The leader is gone; anything of its tree still running left the group on its own.
        launcher.signal_group(process.pid, signal.SIGKILL)
        swept = launcher.kill(leftovers)
        if swept:
            log.warning("child_swept", child=self.id, processes=swept)

    def kill(self, launcher: Launcher, reason: str) -> None:
        """Kill the group at once (a hung child); the exit is handled by whoever awaits it."""
        if self.process is not None and self.process.returncode is None:
            log.warning("child_kill", child=self.id, pid=self.process.pid, reason=reason)
            self.kill_reason = reason
            launcher.signal_group(self.process.pid, signal.SIGKILL)

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "id": self.id,
            "profile": self.spec.profile.name,
            "state": self.state.value,
            "pid": self.pid if self.running else None,
            "ports": {
                "api": self.spec.ports.api,
                "stream": self.spec.ports.stream,
                "browser": self.spec.ports.browser,
            },
            "request_id": self.request_id,
            "served": self.served,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "models": list(self.models),
            "seconds_in_state": round(now - self.state_since, 3),
            "cooldown_seconds": round(self.cooldown_until - now, 3) if self.cooldown_until else None,
            "cooldown_reason": self.cooldown_reason if self.state is ChildState.COOLDOWN else None,
            "next_start_seconds": round(self.next_start_at - now, 3) if self.next_start_at else None,
            "log_file": str(self.log_path),
        }


class RotatingLog:
    """An append-only file that rolls over to `.1` … `.N` past a size; written in whole reads.

    Lighter than logging's RotatingFileHandler, which checks the file system on every
    line: a child's output passes through here on the request path's core.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._file = path.open("ab")
        self._size = self._file.tell()

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._file.flush()
        self._size += len(data)
        if self._size >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self._file.close()
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
        if self.backups > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = self.path.open("wb")
        self._size = 0
