"""The arbiter: keeps one process running per profile, and decides when to restart.

Exits are noticed the moment a process ends (each one is awaited); everything else is
one level-triggered tick: start what is due, kill what never became ready, end
cooldowns, stop what finished draining. A second loop polls every live child's
/health. Child states change only through `Child.transition`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import structlog

from coordinator.child import Child, backoff_delay
from coordinator.health import HealthReport, probe
from coordinator.process import Launcher
from coordinator.settings import Settings
from coordinator.states import ALIVE, RESTARTABLE, ChildState
from coordinator.transport import Transport

log = structlog.get_logger("coordinator.supervisor")

TICK = 0.2
# A child exiting with EX_CONFIG says "my configuration is wrong": restarting cannot help.
EXIT_CONFIG = 78


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        children: Sequence[Child],
        *,
        launcher: Launcher,
        transport: Transport,
        token: str,
        child_env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.child_env = dict(child_env or {})
        self.children = {child.id: child for child in children}
        self.launcher = launcher
        self.transport = transport
        self.token = token
        self.stopping = False
        self._wake = asyncio.Event()
        self._spawning: set[str] = set()
        self._stopping_children: set[str] = set()
        self._last_probe: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []

    # -- public surface -------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn every child at once, then keep them running."""
        await asyncio.gather(*(self._spawn(child, "initial start") for child in self.children.values()))
        self._loops = [
            asyncio.create_task(self._tick_loop(), name="supervisor-tick"),
            asyncio.create_task(self._health_loop(), name="supervisor-health"),
        ]

    async def stop(self) -> None:
        """Stop every child's process group and wait for all of them."""
        self.stopping = True
        for task in self._loops:
            task.cancel()
        for child in self.children.values():
            if child.state in ALIVE:
                child.transition(ChildState.DRAINING, "coordinator shutting down")
        await asyncio.gather(
            *(child.stop(self.launcher, self.settings.stop_timeout) for child in self.children.values())
        )
        for child in self.children.values():
            if child.state is not ChildState.STOPPED:
                child.transition(ChildState.STOPPED, "coordinator shut down")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._loops, return_exceptions=True)

    def restart(self, child: Child, reason: str = "operator restart") -> None:
        child.failures = child.start_failures = 0
        child.cooldown_until = None
        if child.state in RESTARTABLE:
            self._background(self._spawn(child, reason))
        elif child.state in ALIVE:
            child.restart_requested = True
            child.transition(ChildState.DRAINING, reason)
            self._wake.set()

    def drain(self, child: Child, reason: str = "operator drain") -> None:
        child.restart_requested = False
        if child.state in ALIVE:
            child.transition(ChildState.DRAINING, reason)
        elif child.state is not ChildState.STOPPED:
            child.transition(ChildState.STOPPED, reason)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    # -- processes ------------------------------------------------------------------------

    def _argv(self, child: Child) -> list[str]:
        ports = child.spec.ports
        argv = [
            sys.executable,
            "-m",
            "child",
            "--profile",
            str(child.spec.profile.path.resolve()),
            "--api-port",
            str(ports.api),
            "--stream-port",
            str(ports.stream),
            "--browser-port",
            str(ports.browser),
            "--engine",
            self.settings.engine.value,
            "--headless" if self.settings.headless else "--no-headless",
        ]
        for flag, value in (
            ("--browser-path", self.settings.browser_path),
            ("--site-url", self.settings.site_url),
            ("--site-config", self.settings.site_config and self.settings.site_config.resolve()),
        ):
            if value:
                argv += [flag, str(value)]
        return argv

    async def _spawn(self, child: Child, reason: str) -> None:
        if child.id in self._spawning or self.stopping:
            return
        self._spawning.add(child.id)
        try:
            if child.started_at is not None:
                child.restarts += 1
            env = {**os.environ, **self.child_env, "CHILD_TOKEN": self.token}
            try:
                await child.spawn(self.launcher, self._argv(child), env, reason)
            except OSError as exc:
                child.last_error = f"could not start: {exc}"
                self._after_failure(child, never_ready=True)
                return
            assert child.process is not None
            self._background(child.pump_output(child.process))
            self._background(self._watch(child, child.process))
        finally:
            self._spawning.discard(child.id)

    async def _watch(self, child: Child, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        # Give the output pump a moment to copy the last lines: they explain the exit.
        await asyncio.sleep(0.05)
        if child.process is process:
            self._on_exit(child, code)

    def _on_exit(self, child: Child, code: int) -> None:
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        child.request_id = None
        if self.stopping or child.state in (ChildState.STOPPED, ChildState.FATAL, ChildState.AUTH_EXPIRED):
            log.info("child_exit", child=child.id, pid=child.pid, how=how)
            return
        if child.state is ChildState.DRAINING:
            if child.restart_requested:
                child.restart_requested = False
                self._background(self._spawn(child, "restart after drain"))
            else:
                child.transition(ChildState.STOPPED, f"drained ({how})")
            return
        if child.kill_reason is not None:
            detail = f"{child.kill_reason} ({how})"
        elif child.last_output:
            detail = f"{how}; last output: {child.last_output}"
        else:
            detail = how
        child.last_error = detail
        if code == EXIT_CONFIG:
            child.transition(ChildState.FATAL, f"configuration error, not restarting: {detail}")
            return
        now = child.clock()
        if child.ready_at is not None and now - child.ready_at >= self.settings.healthy_run:
            child.failures = 0
        self._after_failure(child, never_ready=child.ready_at is None)

    def _after_failure(self, child: Child, *, never_ready: bool) -> None:
        child.failures += 1
        if never_ready:
            child.start_failures += 1
        if child.start_failures >= self.settings.max_start_failures:
            child.transition(
                ChildState.FATAL,
                f"failed to start {child.start_failures} times in a row: {child.last_error}; "
                f"see {child.log_path}, fix the cause, then POST /admin/children/{child.id}/restart",
            )
            return
        delay = backoff_delay(
            child.failures, self.settings.restart_backoff, self.settings.restart_backoff_max
        )
        child.next_start_at = child.clock() + delay
        child.transition(ChildState.BACKOFF, f"{child.last_error}; restarting in {delay:.1f}s")
        self._wake.set()

    # -- the tick -------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            self._tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK)
            self._wake.clear()

    def _tick(self) -> None:
        now = self.clock()
        for child in self.children.values():
            state = child.state
            if state is ChildState.BACKOFF and child.next_start_at is not None and child.next_start_at <= now:
                self._background(self._spawn(child, "backoff over"))
            elif (
                state is ChildState.STARTING
                and child.started_at is not None
                and now - child.started_at > self.settings.start_timeout
            ):
                child.kill(self.launcher, f"not ready {self.settings.start_timeout:g}s after start")
            elif (
                state is ChildState.COOLDOWN
                and child.cooldown_until is not None
                and child.cooldown_until <= now
            ):
                child.cooldown_until = None
                child.transition(ChildState.READY, "cooldown over")
            elif (
                (state is ChildState.DRAINING and child.request_id is None)
                or (state is ChildState.AUTH_EXPIRED and child.running)
            ) and child.id not in self._stopping_children:
                self._stopping_children.add(child.id)
                self._background(self._stop_one(child))

    async def _stop_one(self, child: Child) -> None:
        try:
            await child.stop(self.launcher, self.settings.stop_timeout)
        finally:
            self._stopping_children.discard(child.id)

    # -- health ---------------------------------------------------------------------------

    async def _health_loop(self) -> None:
        while True:
            now = self.clock()
            due = [
                child
                for child in self.children.values()
                if child.running
                and child.state in ALIVE
                and now - self._last_probe.get(child.id, -1e9) >= self._interval(child)
            ]
            for child in due:
                self._last_probe[child.id] = now
            if due:
                reports = await asyncio.gather(
                    *(
                        probe(self.transport, child.spec.ports.api, self.settings.health_timeout)
                        for child in due
                    )
                )
                for child, report in zip(due, reports, strict=True):
                    self._on_health(child, report)
            await asyncio.sleep(TICK)

    def _interval(self, child: Child) -> float:
        # A starting child is asked often so that it serves as soon as it can.
        return TICK if child.state is ChildState.STARTING else self.settings.health_interval

    def _on_health(self, child: Child, report: HealthReport) -> None:
        if not child.running or child.state not in ALIVE:
            return
        if report.models:
            child.models = report.models
        if report.status == "auth_expired":
            child.last_error = f"logged out: {report.detail or 'the site asked to sign in'}"
            child.transition(
                ChildState.AUTH_EXPIRED,
                f"profile {child.spec.profile.path} is logged out; log in again and replace the file",
            )
        elif report.status == "quota_exhausted":
            child.health_misses = 0
            if child.state in (ChildState.READY, ChildState.STARTING):
                child.cooldown_until = None  # the child says when it can serve again
                child.cooldown_reason = "quota"
                child.transition(ChildState.COOLDOWN, f"child reports quota exhausted: {report.detail}")
        elif report.can_serve:
            child.health_misses = 0
            if child.state is ChildState.STARTING:
                child.transition(ChildState.READY, "health check passed")
            elif child.state is ChildState.COOLDOWN and child.cooldown_until is None:
                child.transition(ChildState.READY, "child reports it can serve again")
        elif report.status == "broken":
            child.kill(self.launcher, f"child reports it is broken: {report.detail}")
        elif child.state is not ChildState.STARTING:
            child.health_misses += 1
            if child.health_misses >= self.settings.health_failures:
                child.kill(
                    self.launcher,
                    f"did not pass {child.health_misses} health checks in a row "
                    f"({report.status}: {report.detail})",
                )

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("supervisor_task_failed", task=task.get_name(), error=repr(task.exception()))
