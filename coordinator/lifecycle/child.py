"""One supervised child process, seen from the coordinator: its state, its process, its data.

A state change carries its data: each transition method (`start`, `ready`, `take`,
`cool_down`, `back_off`, `fail`, `drain`, `stop`, `log_out`, `spare`, `stopped`) checks the move,
sets the new state's data with the state, logs old → new with the reason (child and pid
bound), and tells the listener (the roster, which tells the supervisor, the pool and the
metrics). Nothing else assigns a state or its data. Spawning, stopping a process group
and capturing output are here too; deciding *when* belongs to the supervisor.
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
from coordinator.lifecycle.states import (
    AFTER_STOP,
    TRANSITIONS,
    ChildState,
    CooldownReason,
    InvalidTransition,
)

log = structlog.get_logger("coordinator.lifecycle.child")

LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 3

StateListener = Callable[["Child", ChildState, ChildState], None]
_S = ChildState


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
        # Where the child notes the versions of its profile file it wrote itself (writeback.py).
        self.write_back_record = self.work_dir / "profile-writes.json"
        self._output = RotatingLog(self.log_path, LOG_FILE_BYTES, LOG_FILE_BACKUPS)
        self.last_output = ""
        # Data of the states, set only by the transition methods below.
        self.started_at: float | None = None  # starting
        self.ready_at: float | None = None  # ready since this start
        self.next_start_at: float | None = None  # backoff
        self.cooldown_until: float | None = None  # cooldown (or a quota cooldown waiting for a start)
        self.cooldown_reason: CooldownReason | None = None
        self.after_stop: ChildState = ChildState.STOPPED  # draining, stopping: where the stop leads
        self.request_id: str | None = None  # busy
        self.spare_reason: str | None = None  # spare: why it waits
        # Spare because it was stopped to give its slot away while cooling down: once the
        # cooldown is over it waits for a slot like any spare.
        self.replaced = False
        # Lifecycle bookkeeping, read by the supervisor.
        self.failures = 0  # exits in a row; reset after a healthy run
        self.start_failures = 0  # starts in a row that never became ready
        self.health_misses = 0
        self.probed_at: float | None = None
        # A request the child says it serves though the pool gave it none, and for how many polls.
        self.stray_request: str | None = None
        self.stray_polls = 0
        self.restarts = 0
        # The site's selectors the child last said match nothing on its page (drift).
        self.selectors_missing: tuple[str, ...] = ()
        # Answers it read from the rendered page because its capture saw none (the fallback).
        self.answers_from_dom = 0
        self.last_error: str | None = None
        self.kill_reason: str | None = None  # why we killed the current process, if we did
        # Scheduling bookkeeping, read by the pool: the models the child offers and its
        # settings allow (`offer`); what it offers, whatever the settings say.
        self.models: tuple[str, ...] = ()
        self.offered_models: tuple[str, ...] = ()
        self.served = 0
        self.errors_in_row = 0
        self.ejections = 0
        self.denials = 0  # permission-denied answers in a row
        # Quota is per account and per model: model → when (monotonic) its quota resets.
        # Not a state: the child serves its other models meanwhile.
        self.model_cooldowns: dict[str, float] = {}

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def restart_requested(self) -> bool:
        return self.state in (_S.DRAINING, _S.STOPPING) and self.after_stop is _S.STARTING

    # -- transitions: each sets the new state's data together with the state -------------

    def start(self, reason: str) -> None:
        """Starting: the process is about to be spawned (`process` is None until it is)."""
        if self.state is _S.STARTING:
            raise InvalidTransition(f"child {self.id}: already starting ({reason})")
        self._check(_S.STARTING, reason)
        if self.started_at is not None:
            self.restarts += 1
        self.process = None
        self.started_at = self.clock()
        self.ready_at = None
        self.next_start_at = None
        self.kill_reason = None
        self.health_misses = 0
        self.stray_request = None
        self.stray_polls = 0
        self._move(_S.STARTING, reason)

    def ready(self, reason: str) -> None:
        self._check(_S.READY, reason)
        self.ready_at = self.ready_at or self.clock()
        self.start_failures = 0
        self.cooldown_until = None
        self.cooldown_reason = None
        self._move(_S.READY, reason)

    def take(self, request_id: str) -> None:
        """Busy with `request_id`."""
        self._check(_S.BUSY, request_id)
        self.request_id = request_id
        self._move(_S.BUSY, f"request {request_id}")

    def release(self) -> str | None:
        """Forget the request the child held (its state is the caller's next move); returns its id."""
        request_id, self.request_id = self.request_id, None
        return request_id

    def cool_down(self, why: CooldownReason, until: float | None, reason: str) -> None:
        """Out of scheduling until `until` (monotonic), or until a health check says it serves."""
        self._check(_S.COOLDOWN, reason)
        self.cooldown_reason = why
        self.cooldown_until = until
        self._move(_S.COOLDOWN, reason)

    def keep_cooling(self, why: CooldownReason, until: float) -> None:
        """A cooldown that outlives the process (quota): applied when the next start is ready."""
        self.cooldown_reason = why
        self.cooldown_until = until

    def cool_model(self, model: str, until: float, reason: str) -> None:
        """Out of quota for `model` until `until` (monotonic); the other models still serve."""
        self.model_cooldowns[model] = until
        log.info(
            "model_cooldown",
            child=self.id,
            model=model,
            seconds=round(until - self.clock(), 3),
            reason=reason,
        )

    def model_for(self, asked: str | None) -> str | None:
        """The model this child serves a request for `asked` with: that one, or for a request
        that names none, the first it may serve (the coordinator names it to the child)."""
        if asked is not None:
            return asked
        return self.models[0] if self.models else None

    def model_cooldown_left(self, model: str | None, now: float) -> float:
        """Seconds until `model`'s quota resets on this child (0: it may serve it); None is
        the model it serves a request that names none."""
        model = self.model_for(model)
        until = self.model_cooldowns.get(model) if model is not None else None
        return until - now if until is not None and until > now else 0.0

    def end_model_cooldowns(self, now: float) -> list[str]:
        """Forget the model cooldowns that are over; returns their models."""
        over = [model for model, until in self.model_cooldowns.items() if until <= now]
        for model in over:
            del self.model_cooldowns[model]
            log.info("model_cooldown_over", child=self.id, model=model)
        return over

    def offer(self, models: tuple[str, ...]) -> None:
        """The models the child says it serves; it is given those its settings allow."""
        allowed = self.spec.profile.settings.allowed(models)
        news = (models, allowed) != (self.offered_models, self.models)
        self.offered_models, self.models = models, allowed
        if models and not allowed and news:  # said once, not at every health check
            log.warning(
                "profile_models_not_offered",
                child=self.id,
                allowed=list(self.spec.profile.settings.models or ()),
                offered=list(models),
                effect="it serves no request until its settings or the page change",
            )

    def set_profile(self, profile: Profile) -> None:
        """New settings for the same profile (its file changed); models are filtered again."""
        self.spec = ChildSpec(profile, self.spec.ports)
        if self.offered_models:
            self.offer(self.offered_models)

    def forgive_failures(self) -> None:
        """Count failures from zero again: an operator's restart, or a new profile file."""
        self.failures = self.start_failures = 0

    def clear_cooldown(self) -> None:
        """Forget the cooldowns, so the next start serves at once (an operator's restart)."""
        self.cooldown_until = None
        self.cooldown_reason = None
        self.model_cooldowns.clear()

    def back_off(self, delay: float, reason: str) -> None:
        """Wait `delay` seconds, then start again (the supervisor's tick does)."""
        self._check(_S.BACKOFF, reason)
        self.next_start_at = self.clock() + delay
        self._move(_S.BACKOFF, reason)

    def fail(self, reason: str) -> None:
        """Fatal: not started again until an operator or a new profile file says so."""
        self._check(_S.FATAL, reason)
        self.next_start_at = None
        self._move(_S.FATAL, reason)

    def drain(self, reason: str, *, restart: bool = False) -> None:
        """Finish the request in hand, then stop; and start again if `restart`."""
        self._check(_S.DRAINING, reason)
        self.after_stop = _S.STARTING if restart else _S.STOPPED
        self._move(_S.DRAINING, reason)

    def redirect(self, *, restart: bool) -> None:
        """Change where a drain or stop under way leads: a restart, or a plain stop."""
        if self.state in (_S.DRAINING, _S.STOPPING) and self.after_stop is not _S.AUTH_EXPIRED:
            self.after_stop = _S.STARTING if restart else _S.STOPPED

    def stop(self, reason: str, *, then: ChildState = ChildState.STOPPED) -> None:
        """Stopping: the current process is to be stopped; `then` is the state after its exit."""
        if then not in AFTER_STOP:
            raise InvalidTransition(f"child {self.id}: a stop cannot lead to {then}")
        self._check(_S.STOPPING, reason)
        self.after_stop = then
        if then is _S.SPARE:
            self.spare_reason, self.replaced = reason, True
        self._move(_S.STOPPING, reason)

    def log_out(self, detail: str, reason: str) -> None:
        """The profile is logged out: stop the process if it runs, then auth_expired."""
        self.last_error = f"logged out: {detail}"
        if self.running and self.state is not _S.STOPPING:
            self.stop(reason, then=_S.AUTH_EXPIRED)
        elif self.state is _S.STOPPING:
            self.after_stop = _S.AUTH_EXPIRED
        else:
            self._move_checked(_S.AUTH_EXPIRED, reason)

    def spare(self, reason: str, *, replaced: bool = False) -> None:
        """Spare: valid, not running, waiting for a --max-browsers slot; `reason` says why,
        `replaced` that it gave its slot away while cooling down."""
        self._check(_S.SPARE, reason)
        self.spare_reason, self.replaced = reason, replaced
        self._move(_S.SPARE, reason)

    def stopped(self, reason: str) -> None:
        """Stopped: the process is gone and nothing starts it again by itself."""
        self._move_checked(_S.STOPPED, reason)

    def logged_out(self, reason: str) -> None:
        """Auth expired with no process: at startup, for a profile recorded as logged out."""
        self._move_checked(_S.AUTH_EXPIRED, reason)

    def _move_checked(self, new: ChildState, reason: str) -> None:
        self._check(new, reason)
        self._move(new, reason)

    def _check(self, new: ChildState, reason: str) -> None:
        if new is not self.state and new not in TRANSITIONS[self.state]:
            raise InvalidTransition(f"child {self.id}: {self.state} → {new} is not allowed ({reason})")

    def _move(self, new: ChildState, reason: str) -> None:
        old = self.state
        if new is old:
            return
        self.state = new
        self.state_since = self.clock()
        # ready ⇄ busy happens twice a request, and the request line names the child already.
        quiet = {old, new} == {_S.READY, _S.BUSY}
        emit = log.debug if quiet else log.info
        emit("child_state", child=self.id, pid=self.pid, old=old.value, new=new.value, reason=reason)
        if self.on_change is not None:
            self.on_change(self, old, new)

    # -- the process ---------------------------------------------------------------------

    async def spawn(self, launcher: Launcher, argv: Sequence[str], env: dict[str, str], reason: str) -> None:
        """Start: the state first (so nothing schedules a second spawn), then the process.

        Raises OSError when the process cannot be started; the state stays `starting`
        (or whatever it became meanwhile) for the caller to decide.
        """
        self.start(reason)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.process = await launcher.spawn(argv, cwd=self.work_dir, env=env)

    async def pump_output(self, process: asyncio.subprocess.Process) -> None:
        """Copy the child's stdout and stderr into its rotating log until the pipe closes."""
        assert process.stdout is not None
        while data := await process.stdout.read(65536):
            self._output.write(data)
            lines = data.rstrip().rsplit(b"\n", 1)
            if lines[-1]:
                self.last_output = lines[-1][-500:].decode("utf-8", "replace")

    async def terminate(
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
        cooling = self.state is _S.COOLDOWN
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
            "errors_in_row": self.errors_in_row,
            "ejections": self.ejections,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "selectors_missing": list(self.selectors_missing),
            "answers_from_dom": self.answers_from_dom,
            "models": list(self.models),
            "settings": self.spec.profile.settings.describe(),
            "seconds_in_state": round(now - self.state_since, 3),
            "cooldown_seconds": round(self.cooldown_until - now, 3) if self.cooldown_until else None,
            "cooldown_reason": self.cooldown_reason.value if cooling and self.cooldown_reason else None,
            "model_cooldowns": {
                model: round(until - now, 3) for model, until in self.model_cooldowns.items() if until > now
            },
            "spare_reason": self.spare_reason if self.state is _S.SPARE else None,
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
