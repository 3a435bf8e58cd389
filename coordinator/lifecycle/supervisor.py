"""The arbiter: keeps one process running per profile, and decides when to restart.

Exits are noticed the moment a process ends (each one is awaited); everything else is
one level-triggered tick: start what is due, kill what never became ready, end
cooldowns, stop what finished draining, and reconcile the children with the profiles
folder (polled every `--profiles-poll` seconds, or at once on SIGHUP): a new file gets a
child on the next free port triple, a removed file's child drains and leaves, a changed
file's child restarts after its request. A second loop polls every live child's
/health. Child states change only through `Child.transition`.

Quota cooldowns and logged-out profiles are kept in a state file in the log dir
(`coordinator.lifecycle.cooldowns`), so that a new coordinator keeps them out of service too.
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

from coordinator.lifecycle import ports as port_checks
from coordinator.lifecycle.child import Child, ChildSpec, StateListener, backoff_delay
from coordinator.lifecycle.cooldowns import FILE_NAME as COOLDOWNS_FILE
from coordinator.lifecycle.cooldowns import Cooldowns
from coordinator.lifecycle.health import HealthReport, probe
from coordinator.lifecycle.ports import PortError, PortTriple
from coordinator.lifecycle.process import Launcher
from coordinator.lifecycle.states import ALIVE, RESTARTABLE, SERVING, ChildState
from coordinator.lifecycle.watch import ProfileVersion, ProfileWatcher, Scan
from coordinator.protocol.link import EXIT_CONFIG, TOKEN_ENV, ChildArgs
from coordinator.serving.pool import Pool
from coordinator.serving.transport import Transport
from coordinator.settings import Settings

log = structlog.get_logger("coordinator.lifecycle.supervisor")

TICK = 0.2
LAST_WORDS_SECONDS = 0.5
_SECRETS_NOT_FOR_CHILDREN = frozenset({"COORDINATOR_API_KEY", "COORDINATOR_API_KEY_FILE"})
# Triples tried past the highest one in use when the ports of a free one are taken.
SPARE_TRIPLES = 8


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
        pool: Pool | None = None,
        listener: StateListener | None = None,
        cooldowns: Cooldowns | None = None,
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
        # Children added later are built like the first ones and join the pool's list.
        self.pool = pool
        self.listener = listener
        self.cooldowns = cooldowns or Cooldowns(settings.log_dir / COOLDOWNS_FILE)
        self.watcher = ProfileWatcher(settings.profiles)
        self._versions: dict[str, ProfileVersion] = {}  # the file version each child was given
        self._absent: set[str] = set()  # children whose file is gone: they drain, then leave
        self._add_errors: dict[str, str] = {}
        self._rescan = False
        self._scan_due = clock()

    # -- public surface -------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn every child at once (but those recorded as logged out), then keep them running."""
        scan = self.watcher.scan(quiet=True)  # the rejected files were reported at startup
        for name, version in (scan.valid if scan else {}).items():
            if name in self.children:
                self._versions[name] = version
        for name, saved in self.cooldowns.load().items():
            if saved.reason == "auth_expired" and scan is not None and name not in scan.valid:
                self.cooldowns.clear(name)  # the file is gone or invalid: nothing left to keep out
        for child in self.children.values():
            self._restore(child)
        await asyncio.gather(
            *(
                self._spawn(child, "initial start")
                for child in self.children.values()
                if child.state is ChildState.STOPPED
            )
        )
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
        if self.cooldowns.clear(child.id):
            log.info("cooldown_cleared", child=child.id, reason=reason)
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

    def rescan(self) -> None:
        """Scan the profiles folder at the next tick (SIGHUP)."""
        self._rescan = True
        self._wake.set()

    def on_change(self, child: Child, old: ChildState, new: ChildState) -> None:
        """Keep the state file in step with the children; called on every state change."""
        if new is ChildState.COOLDOWN:
            if child.cooldown_reason == "quota" and child.cooldown_until is not None:
                self.cooldowns.record_quota(child.id, child.cooldown_until - self.clock())
        elif new is ChildState.AUTH_EXPIRED:
            version = self._versions.get(child.id)
            saved = self.cooldowns.get(child.id)
            if version is not None and (saved is None or saved.stamp != version.stamp):
                self.cooldowns.record_auth_expired(child.id, version.stamp)
        elif old is ChildState.COOLDOWN and new is ChildState.READY:
            self.cooldowns.clear(child.id)

    # -- processes ------------------------------------------------------------------------

    def _argv(self, child: Child) -> list[str]:
        ports = child.spec.ports
        args = ChildArgs(
            profile=child.spec.profile.path.resolve(),
            api_port=ports.api,
            stream_port=ports.stream,
            browser_port=ports.browser,
            engine=self.settings.engine,
            headless=self.settings.headless,
            browser_path=str(self.settings.browser_path) if self.settings.browser_path else None,
            site_url=self.settings.site_url,
            site_config=self.settings.site_config.resolve() if self.settings.site_config else None,
        )
        return [sys.executable, "-m", "child", *args.to_argv()]

    async def _spawn(self, child: Child, reason: str) -> None:
        if child.id in self._spawning or self.stopping:
            return
        self._spawning.add(child.id)
        try:
            if child.started_at is not None:
                child.restarts += 1
            # A child needs no API key: it only ever talks to us, with its token.
            inherited = {k: v for k, v in os.environ.items() if k not in _SECRETS_NOT_FOR_CHILDREN}
            env = {**inherited, **self.child_env, TOKEN_ENV: self.token}
            try:
                await child.spawn(self.launcher, self._argv(child), env, reason)
            except OSError as exc:
                child.last_error = f"could not start: {exc}"
                self._after_failure(child, never_ready=True)
                return
            assert child.process is not None
            pump = self._background(child.pump_output(child.process))
            self._background(self._watch(child, child.process, pump))
        finally:
            self._spawning.discard(child.id)

    async def _watch(
        self, child: Child, process: asyncio.subprocess.Process, pump: asyncio.Task[None]
    ) -> None:
        code = await process.wait()
        # A child that takes requests leaves the pool the moment it dies, or retries would
        # land on its closed port; one that does not can wait for its last lines of output,
        # which explain the exit.
        if child.state not in SERVING:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pump), LAST_WORDS_SECONDS)
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
        for child in list(self.children.values()):
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
                (
                    (state is ChildState.DRAINING and child.request_id is None)
                    or (state in (ChildState.AUTH_EXPIRED, ChildState.STOPPED) and child.running)
                )
                and child.process is not None
                and child.id not in self._stopping_children
                and child.id not in self._spawning
            ):
                # The process is named now: by the time the task runs, a restart after the
                # drain may have started a new one, which must not be stopped.
                self._stopping_children.add(child.id)
                self._background(self._stop_one(child, child.process))
        try:
            self._watch_profiles(now)
        except Exception as exc:  # the tick must go on; the next scan tries again
            log.exception("profiles_scan_failed", error=repr(exc))

    async def _stop_one(self, child: Child, process: asyncio.subprocess.Process) -> None:
        try:
            await child.stop(self.launcher, self.settings.stop_timeout, process)
        finally:
            self._stopping_children.discard(child.id)

    # -- the profiles folder --------------------------------------------------------------

    def _watch_profiles(self, now: float) -> None:
        poll = self.settings.profiles_poll
        if self._rescan or (poll > 0 and now >= self._scan_due):
            if self._rescan:
                log.info("profiles_rescan", folder=str(self.settings.profiles), reason="SIGHUP")
            self._rescan = False
            self._scan_due = now + poll
            scan = self.watcher.scan()
            if scan is not None:
                self._reconcile(scan)
        self._drop_retired()

    def _reconcile(self, scan: Scan) -> None:
        """Make the children match the valid files: add, retire, restart."""
        for name, child in list(self.children.items()):
            version = scan.valid.get(name)
            if version is None:
                # An invalid version (perhaps half written) leaves the child as it is.
                if name not in scan.rejected:
                    self._retire(child)
                continue
            if name in self._absent:
                self._absent.discard(name)
                log.info("profile_back", child=name, path=str(version.profile.path))
                if child.state is ChildState.DRAINING:
                    child.restart_requested = True
                elif child.state is ChildState.STOPPED:
                    self._background(self._spawn(child, "profile file is back"))
            known = self._versions.get(name)
            self._versions[name] = version
            if known is not None and known.digest != version.digest:
                self._file_changed(child, version)
        for name, version in scan.valid.items():
            if name not in self.children:
                self._add(version)

    def _add(self, version: ProfileVersion) -> None:
        profile = version.profile
        try:
            ports = self._free_triple()
        except PortError as exc:
            if self._add_errors.get(profile.name) != str(exc):
                log.warning(
                    "profile_not_started",
                    child=profile.name,
                    path=str(profile.path),
                    reason=str(exc),
                    effect="tried again at every scan",
                )
            self._add_errors[profile.name] = str(exc)
            return
        self._add_errors.pop(profile.name, None)
        child = Child(ChildSpec(profile, ports), log_dir=self.settings.log_dir, on_change=self.listener)
        self.children[child.id] = child
        self._versions[child.id] = version
        if self.pool is not None:
            self.pool.children.append(child)
        log.info(
            "profile_added",
            child=child.id,
            path=str(profile.path),
            ports={"api": ports.api, "stream": ports.stream, "browser": ports.browser},
        )
        self._restore(child)
        if child.state is ChildState.STOPPED:
            self._background(self._spawn(child, "profile file added"))

    def _free_triple(self) -> PortTriple:
        """The triple of the smallest child index not in use whose ports are all free."""
        s = self.settings
        used = {(c.spec.ports.api - s.base_api_port) // s.port_step for c in self.children.values()}
        problem: PortError | None = None
        for index in range(max(used, default=-1) + 1 + SPARE_TRIPLES):
            if index in used:
                continue
            triple = port_checks.allocate(
                index + 1,
                base_api=s.base_api_port,
                base_stream=s.base_stream_port,
                base_browser=s.base_browser_port,
                step=s.port_step,
            )[index]
            if s.port in triple.uses():
                problem = PortError(f"child port {s.port} is the coordinator's --port; move one of them")
                continue
            try:
                port_checks.check_free(triple.uses())
            except PortError as exc:
                problem = exc
                continue
            return triple
        raise problem or PortError("no free port triple")

    def _retire(self, child: Child) -> None:
        """The file is gone: drain the child; `_drop_retired` removes it once stopped."""
        if child.id not in self._absent:
            self._absent.add(child.id)
            log.info("profile_removed", child=child.id, path=str(child.spec.profile.path))
        elif child.state in (ChildState.DRAINING, ChildState.STOPPED) and not child.restart_requested:
            return
        self.drain(child, "profile file removed")

    def _drop_retired(self) -> None:
        for name in list(self._absent):
            child = self.children.get(name)
            if child is None:
                self._absent.discard(name)
            elif (
                child.state is ChildState.STOPPED
                and not child.running
                and name not in self._spawning
                and name not in self._stopping_children
            ):
                del self.children[name]
                if self.pool is not None and child in self.pool.children:
                    self.pool.children.remove(child)
                self._absent.discard(name)
                self._versions.pop(name, None)
                self._last_probe.pop(name, None)
                log.info("child_removed", child=name, reason="its profile file was removed")

    def _file_changed(self, child: Child, version: ProfileVersion) -> None:
        log.info("profile_changed", child=child.id, path=str(version.profile.path), state=child.state.value)
        child.failures = child.start_failures = 0
        saved = self.cooldowns.get(child.id)
        if saved is not None and saved.reason == "auth_expired":
            self.cooldowns.clear(child.id)
        state = child.state
        if state in (ChildState.AUTH_EXPIRED, ChildState.FATAL, ChildState.BACKOFF):
            self._background(self._spawn(child, "profile file changed"))
        elif state in ALIVE and state is not ChildState.DRAINING:
            child.restart_requested = True
            child.transition(ChildState.DRAINING, "profile file changed; restarting after its request")
            self._wake.set()
        # Draining: a restart, if one is due, reads the new file. Stopped: an operator's drain holds.

    def _restore(self, child: Child) -> None:
        """Apply what the state file says of a child about to start: logged out, or cooling down."""
        saved = self.cooldowns.get(child.id)
        if saved is None:
            return
        if saved.reason == "auth_expired":
            version = self._versions.get(child.id)
            if version is not None and version.stamp == saved.stamp:
                child.last_error = "logged out (recorded by an earlier run; the file has not changed since)"
                child.transition(
                    ChildState.AUTH_EXPIRED,
                    f"profile {child.spec.profile.path} was logged out and has not changed since; "
                    "log in again and replace the file",
                )
            else:
                self.cooldowns.clear(child.id)
            return
        remaining = saved.remaining(self.cooldowns.wall())
        if remaining > 0:
            child.cooldown_until = self.clock() + remaining
            child.cooldown_reason = "quota"
            log.info("cooldown_restored", child=child.id, reason="quota", seconds=round(remaining))

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
                # Without a time from the child, the child says when it can serve again.
                child.cooldown_until = self.clock() + report.retry_after if report.retry_after else None
                child.cooldown_reason = "quota"
                child.transition(ChildState.COOLDOWN, f"child reports quota exhausted: {report.detail}")
        elif report.can_serve:
            child.health_misses = 0
            if child.state is ChildState.STARTING:
                quota = child.cooldown_reason == "quota" and child.cooldown_until is not None
                left = child.cooldown_until - self.clock() if quota and child.cooldown_until else 0.0
                if left > 0:
                    # A quota cooldown is the account's, so it outlives a restart of the child (or of
                    # the coordinator); an ejection was the old process's, and a fresh one starts clean.
                    child.transition(
                        ChildState.COOLDOWN,
                        f"health check passed; still in {child.cooldown_reason} cooldown for {left:.0f}s",
                    )
                else:
                    child.cooldown_until = None
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

    def _background(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("supervisor_task_failed", task=task.get_name(), error=repr(task.exception()))
