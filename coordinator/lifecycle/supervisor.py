"""The arbiter: keeps one process running per profile, and decides when to restart.

Exits are noticed the moment a process ends (each one is awaited); everything else is
one level-triggered tick: start what is due, kill what never became ready, end
cooldowns, stop what finished draining, and let the reconcile
(`coordinator.lifecycle.reconcile`) match the children with the profiles folder. A
second loop polls every live child's /health through the `Prober` seam. States change
only through the children's transition methods; entering `stopping` (whoever caused
it) is what makes the supervisor stop that process.

Quota cooldowns and logged-out profiles are kept in a state file in the log dir
(`coordinator.lifecycle.cooldowns`), so that a new coordinator keeps them out of service too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import structlog

from coordinator.lifecycle.child import Child, backoff_delay
from coordinator.lifecycle.cooldowns import FILE_NAME as COOLDOWNS_FILE
from coordinator.lifecycle.cooldowns import Cooldowns, Reason
from coordinator.lifecycle.health import UNREACHABLE, Canceller, HealthReport, Prober
from coordinator.lifecycle.process import Launcher
from coordinator.lifecycle.reconcile import Reconciler
from coordinator.lifecycle.roster import Roster
from coordinator.lifecycle.states import (
    ACCOUNT_COOLDOWNS,
    ALIVE,
    OCCUPYING,
    RESTARTABLE,
    SERVING,
    ChildState,
    CooldownReason,
)
from coordinator.protocol.link import EXIT_CONFIG, TOKEN_ENV, ChildArgs, HealthStatus
from coordinator.protocol.upstream_proxy import PROXY_ENV
from coordinator.settings import Settings

log = structlog.get_logger("coordinator.lifecycle.supervisor")

TICK = 0.2
LAST_WORDS_SECONDS = 0.5
# Polls in a row that find a child busy with a request the pool did not give it: at the
# first count it is asked to cancel that request, at the second it is killed and restarted.
# One poll is not enough: a child may finish a request a moment after the pool let it go.
STRAY_CANCEL_POLLS = 2
STRAY_KILL_POLLS = 4
# A model quota the child reports in /health again is news only if its end moved this much.
QUOTA_NEWS_SECONDS = 5.0
_SECRETS_NOT_FOR_CHILDREN = frozenset(
    {"COORDINATOR_API_KEY", "COORDINATOR_API_KEY_FILE", "COORDINATOR_ADMIN_KEY", "COORDINATOR_ADMIN_KEY_FILE"}
)
_S = ChildState


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        roster: Roster,
        *,
        launcher: Launcher,
        prober: Prober,
        token: str,
        canceller: Canceller | None = None,
        child_env: Mapping[str, str] | None = None,
        cooldowns: Cooldowns | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.child_env = dict(child_env or {})
        self.roster = roster
        self.launcher = launcher
        self.prober = prober
        self.canceller = canceller
        self.token = token
        self.stopping = False
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self.cooldowns = cooldowns or Cooldowns(settings.log_dir / COOLDOWNS_FILE)
        # Each child's model quotas as last written to the state file (monotonic ends).
        self._saved_models: dict[str, dict[str, float]] = {}
        self.reconciler = Reconciler(settings, roster, self.cooldowns, self, now=clock())
        roster.subscribe(self.on_change)

    # -- public surface -------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn every child at once (but those recorded as logged out), then keep them running."""
        await self.start_children()
        self._loops = [
            asyncio.create_task(self._tick_loop(), name="supervisor-tick"),
            asyncio.create_task(self._health_loop(), name="supervisor-health"),
        ]

    async def start_children(self) -> None:
        """The first spawn of every child, without the loops (a test drives `tick` and `probe_due`)."""
        scan = self.reconciler.first_scan()
        for name, saved in self.cooldowns.load().items():
            if saved.reason is Reason.AUTH_EXPIRED and scan is not None and name not in scan.valid:
                self.cooldowns.clear(name)  # the file is gone or invalid: nothing left to keep out
        for child in self.roster:
            self.restore(child)
        now = self.clock()
        # Those that may serve at once first: with --max-browsers, the cooling ones wait as spares.
        due = sorted(
            (child for child in self.roster if child.state is _S.STOPPED),
            key=lambda child: not self._may_serve(child, now),
        )
        await asyncio.gather(*(self._spawn(child, "initial start") for child in due))

    async def stop(self) -> None:
        """Stop every child's process group and wait for all of them."""
        self.stopping = True
        for task in self._loops:
            task.cancel()
        for child in self.roster:
            if child.state in ALIVE:
                child.drain("coordinator shutting down")
            if child.state is _S.DRAINING and child.running:
                child.stop("coordinator shutting down")
        await asyncio.gather(
            *(child.terminate(self.launcher, self.settings.stop_timeout) for child in self.roster)
        )
        for child in self.roster:
            if child.state is _S.STOPPING:
                self._finish_stop(child, "coordinator shut down")
            if child.state is not _S.STOPPED:
                child.stopped("coordinator shut down")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._loops, return_exceptions=True)

    def restart(self, child: Child, reason: str = "operator restart") -> None:
        child.forgive_failures()
        child.clear_cooldown()
        if self.cooldowns.clear(child.id):
            log.info("cooldown_cleared", child=child.id, reason=reason)
        if child.state in RESTARTABLE:
            self.spawn_soon(child, reason)
        elif child.state in ALIVE:
            child.drain(reason, restart=True)
            self._wake.set()
        elif child.state is _S.STOPPING:
            child.redirect(restart=True)

    def drain(self, child: Child, reason: str = "operator drain", *, restart: bool = False) -> None:
        if child.state in ALIVE:
            child.drain(reason, restart=restart)
        elif child.state is _S.STOPPING:
            child.redirect(restart=restart)
        elif child.state is not _S.STOPPED:
            child.stopped(reason)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def rescan(self) -> None:
        """Scan the profiles folder at the next tick (SIGHUP)."""
        self.reconciler.rescan()
        self._wake.set()

    def on_change(self, child: Child, old: ChildState, new: ChildState) -> None:
        """Stop what enters `stopping`; keep the state file in step. Called on every state change."""
        if new is _S.STOPPING and child.process is not None and not self.stopping:
            # The process is named now: by the time the task runs, a restart after the
            # stop may have started a new one, which must not be stopped.
            self._background(child.terminate(self.launcher, self.settings.stop_timeout, child.process))
        elif new is _S.COOLDOWN:
            if child.cooldown_reason in ACCOUNT_COOLDOWNS and child.cooldown_until is not None:
                reason = Reason(child.cooldown_reason.value)
                self.cooldowns.record_quota(child.id, child.cooldown_until - self.clock(), reason)
        elif new is _S.AUTH_EXPIRED:
            version = self.reconciler.version(child.id)
            saved = self.cooldowns.get(child.id)
            if version is not None and (saved is None or saved.stamp != version.stamp):
                self.cooldowns.record_auth_expired(child.id, version.stamp)
        elif old is _S.COOLDOWN and new is _S.READY:
            self.cooldowns.clear(child.id)

    def restore(self, child: Child) -> None:
        """Apply what the state file says of a child about to start: logged out, cooling down,
        or out of quota for some models."""
        now = self.clock()
        for model, left in self.cooldowns.model_remaining(child.id).items():
            child.cool_model(model, now + left, "recorded by an earlier run")
        self._saved_models[child.id] = dict(child.model_cooldowns)
        saved = self.cooldowns.get(child.id)
        if saved is None:
            return
        if saved.reason is Reason.AUTH_EXPIRED:
            version = self.reconciler.version(child.id)
            if version is not None and version.stamp == saved.stamp:
                child.last_error = "logged out (recorded by an earlier run; the file has not changed since)"
                child.logged_out(
                    f"profile {child.spec.profile.path} was logged out and has not changed since; "
                    "log in again and replace the file"
                )
            else:
                self.cooldowns.clear(child.id)
            return
        remaining = saved.remaining(self.cooldowns.wall())
        if remaining > 0:
            why = CooldownReason(saved.reason.value)
            child.keep_cooling(why, self.clock() + remaining)
            log.info("cooldown_restored", child=child.id, reason=why.value, seconds=round(remaining))

    def spawn_soon(self, child: Child, reason: str) -> None:
        self._background(self._spawn(child, reason))

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
            ca_file=self.settings.ca_file.resolve() if self.settings.ca_file else None,
            write_back_interval=self.settings.write_back_interval,
            write_back_requests=self.settings.write_back_requests,
            write_back_record=child.write_back_record.resolve(),
            locale=child.spec.profile.settings.locale,
            timezone=child.spec.profile.settings.timezone,
        )
        return [sys.executable, "-m", "child", *args.to_argv()]

    async def _spawn(self, child: Child, reason: str) -> None:
        if not self._may_spawn(child):
            return
        if self._no_slot_for(child):
            child.spare(f"--max-browsers {self.settings.max_browsers}: every slot is taken ({reason})")
            return
        # A child needs no API key: it only ever talks to us, with its token.
        inherited = {k: v for k, v in os.environ.items() if k not in _SECRETS_NOT_FOR_CHILDREN}
        env = {**inherited, **self.child_env, TOKEN_ENV: self.token}
        # The account's proxy, credentials and all: in the environment, which `ps` does not
        # show, and only this profile's (never one inherited from ours).
        env.pop(PROXY_ENV, None)
        proxy = child.spec.profile.settings.proxy
        if proxy is not None:
            env[PROXY_ENV] = proxy.url()
        try:
            await child.spawn(self.launcher, self._argv(child), env, reason)
        except OSError as exc:
            child.last_error = f"could not start: {exc}"
            if child.state is _S.STARTING:
                self._after_failure(child, never_ready=True)
            else:  # drained while it was being spawned
                self._finish_stop(child, "could not start")
            return
        assert child.process is not None
        pump = self._background(child.pump_output(child.process))
        self._background(self._watch(child, child.process, pump))

    def _may_spawn(self, child: Child) -> bool:
        # Not when starting already, shutting down, or taken off the roster since it was scheduled.
        return child.state is not _S.STARTING and not self.stopping and self.roster.get(child.id) is child

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
        child.release()
        if self.stopping or child.state in (_S.STOPPED, _S.FATAL, _S.AUTH_EXPIRED):
            log.info("child_exit", child=child.id, pid=child.pid, how=how)
            return
        if child.state in (_S.DRAINING, _S.STOPPING):
            self._finish_stop(child, how)
            return
        if child.kill_reason is not None:
            detail = f"{child.kill_reason} ({how})"
        elif child.last_output:
            detail = f"{how}; last output: {child.last_output}"
        else:
            detail = how
        child.last_error = detail
        if code == EXIT_CONFIG:
            child.fail(f"configuration error, not restarting: {detail}")
            return
        if child.ready_at is not None and self.clock() - child.ready_at >= self.settings.healthy_run:
            child.failures = 0
        self._after_failure(child, never_ready=child.ready_at is None)

    def _finish_stop(self, child: Child, how: str) -> None:
        """The process of a draining or stopping child is gone: go where the stop leads."""
        then = child.after_stop
        if then is _S.STARTING and not self.stopping:
            self.spawn_soon(child, "restart after drain")
        elif then is _S.SPARE and not self.stopping:
            child.spare(child.spare_reason or f"replaced ({how})", replaced=True)
        elif then is _S.AUTH_EXPIRED:
            child.logged_out(
                f"profile {child.spec.profile.path} is logged out; log in again and replace the file ({how})"
            )
        else:
            child.stopped(f"drained ({how})")

    def _after_failure(self, child: Child, *, never_ready: bool) -> None:
        child.failures += 1
        if never_ready:
            child.start_failures += 1
        if child.start_failures >= self.settings.max_start_failures:
            child.fail(
                f"failed to start {child.start_failures} times in a row: {child.last_error}; "
                f"see {child.log_path}, fix the cause, then POST /admin/children/{child.id}/restart",
            )
            return
        delay = backoff_delay(
            child.failures, self.settings.restart_backoff, self.settings.restart_backoff_max
        )
        child.back_off(delay, f"{child.last_error}; restarting in {delay:.1f}s")
        self._wake.set()

    # -- the tick -------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK)
            self._wake.clear()

    def tick(self) -> None:
        """One pass: start what is due, kill what hung starting, end cooldowns, stop the drained."""
        now = self.clock()
        for child in self.roster:
            state = child.state
            if state is _S.BACKOFF and child.next_start_at is not None and child.next_start_at <= now:
                self.spawn_soon(child, "backoff over")
            elif (
                state is _S.STARTING
                and child.started_at is not None
                and now - child.started_at > self.settings.start_timeout
            ):
                child.kill(self.launcher, f"not ready {self.settings.start_timeout:g}s after start")
            elif state is _S.COOLDOWN and child.cooldown_until is not None and child.cooldown_until <= now:
                child.ready("cooldown over")
            elif state is _S.DRAINING and child.request_id is None and child.running:
                # Not while it is being spawned (no process yet): the spawn ends first.
                child.stop("drained: no request in hand", then=child.after_stop)
            child.end_model_cooldowns(now)
            self._save_models(child, now)
        self._balance(now)
        try:
            self.reconciler.tick(now)
        except Exception as exc:  # the tick must go on; the next scan tries again
            log.exception("profiles_scan_failed", error=repr(exc))

    # -- spares (--max-browsers) -----------------------------------------------------------

    def _balance(self, now: float) -> None:
        """Keep --max-browsers children running: a spare takes the place of one that is out.

        A fatal or logged-out child holds no slot, so a spare starts in its place; one
        cooling down (quota, rate limit) for longer than --spare-after is stopped and waits
        as a spare itself, but only while a spare that may serve is there to replace it. A
        spare whose cooldown ended waits for a free slot: it never evicts a running child."""
        limit = self.settings.max_browsers
        if limit <= 0 or self.stopping:
            return
        ready_spares = [c for c in self.roster if c.state is _S.SPARE and self._may_serve(c, now)]
        for child in self.roster:
            if not ready_spares:
                break
            left = (child.cooldown_until or now) - now
            why = child.cooldown_reason
            if child.state is _S.COOLDOWN and why in ACCOUNT_COOLDOWNS and left > self.settings.spare_after:
                assert why is not None
                ready_spares.pop(0)
                child.stop(
                    f"replaced: in {why.value} cooldown for {left:.0f}s, "
                    f"more than --spare-after {self.settings.spare_after:g}s",
                    then=_S.SPARE,
                )
        free = limit - sum(1 for c in self.roster if c.state in OCCUPYING)
        for child in self.roster:
            if child.state is not _S.SPARE or not self._may_serve(child, now):
                continue
            if free > 0:
                free -= 1
                self.spawn_soon(child, f"a slot of --max-browsers {limit} is free")
            elif child.replaced:
                child.spare(f"--max-browsers {limit}: every slot is taken (its cooldown is over)")

    def _no_slot_for(self, child: Child) -> bool:
        limit = self.settings.max_browsers
        if limit <= 0 or child.state in OCCUPYING:
            return False  # a restart keeps the slot its child holds
        return sum(1 for c in self.roster if c.state in OCCUPYING) >= limit

    def _may_serve(self, child: Child, now: float) -> bool:
        """Not cooling down as a whole account (this run's cooldown, or one `restore` brought
        back from the state file)."""
        until = child.cooldown_until if child.cooldown_reason in ACCOUNT_COOLDOWNS else None
        return until is None or until <= now

    def _save_models(self, child: Child, now: float) -> None:
        """Keep the state file's model quotas of `child` in step with the child's, level-triggered:
        whoever changed them (the pool, a health check, an operator's restart), they are saved here."""
        if child.model_cooldowns != self._saved_models.get(child.id, {}):
            self.cooldowns.set_models(
                child.id, {model: until - now for model, until in child.model_cooldowns.items()}
            )
            self._saved_models[child.id] = dict(child.model_cooldowns)

    # -- health ---------------------------------------------------------------------------

    async def _health_loop(self) -> None:
        while True:
            await self.probe_due()
            await asyncio.sleep(TICK)

    async def probe_due(self) -> None:
        """Ask every live child whose interval has passed for its /health, and act on the answers."""
        now = self.clock()
        due = [
            child
            for child in self.roster
            if child.running
            and child.state in ALIVE
            and (child.probed_at is None or now - child.probed_at >= self._interval(child))
        ]
        for child in due:
            child.probed_at = now
        if due:
            timeout = self.settings.health_timeout
            reports = await asyncio.gather(*(self.prober(child.spec.ports.api, timeout) for child in due))
            for child, report in zip(due, reports, strict=True):
                self._on_health(child, report)

    def _interval(self, child: Child) -> float:
        # A starting child is asked often so that it serves as soon as it can.
        return TICK if child.state is _S.STARTING else self.settings.health_interval

    def _on_health(self, child: Child, report: HealthReport) -> None:
        if not child.running or child.state not in ALIVE:
            return
        if report.models and report.can_serve:
            # Not before: a starting child names its built-in models until it has read the
            # page's list, and /v1/models would offer names the scheduler then refuses.
            child.offer(report.models)
        if report.status != UNREACHABLE:
            child.selectors_missing = report.selectors_missing
            child.answers_from_dom = report.answers_from_dom
        self._check_stray(child, report)
        self._note_model_quotas(child, report)
        if report.status == HealthStatus.AUTH_EXPIRED:
            child.log_out(
                report.detail or "the site asked to sign in",
                f"profile {child.spec.profile.path} is logged out; log in again and replace the file",
            )
        elif report.status == HealthStatus.QUOTA_EXHAUSTED:
            child.health_misses = 0
            if child.state in (_S.READY, _S.STARTING):
                # Without a time from the child, the child says when it can serve again.
                until = self.clock() + report.retry_after if report.retry_after else None
                child.cool_down(
                    CooldownReason.QUOTA, until, f"child reports quota exhausted: {report.detail}"
                )
        elif report.can_serve:
            child.health_misses = 0
            if child.state is _S.STARTING:
                self._started(child)
            elif child.state is _S.COOLDOWN and child.cooldown_until is None and report.request_id is None:
                # Not while it still serves a request of its own: the pool would find it busy.
                child.ready("child reports it can serve again")
        elif report.status == HealthStatus.BROKEN:
            child.kill(self.launcher, f"child reports it is broken: {report.detail}")
        elif child.state is not _S.STARTING:
            child.health_misses += 1
            if child.health_misses >= self.settings.health_failures:
                child.kill(
                    self.launcher,
                    f"did not pass {child.health_misses} health checks in a row "
                    f"({report.status}: {report.detail})",
                )

    def _note_model_quotas(self, child: Child, report: HealthReport) -> None:
        """The models the child says are out of quota: out for that long, for that model only."""
        now = self.clock()
        for model, seconds in report.quota.items():
            until = now + seconds
            known = child.model_cooldowns.get(model)
            if known is None or abs(until - known) > QUOTA_NEWS_SECONDS:
                child.cool_model(model, until, "child reports the model out of quota")

    def _check_stray(self, child: Child, report: HealthReport) -> None:
        """Recover a child busy with a request the pool does not know it holds.

        Such a child answers every request `child_busy` while the pool sees it ready: it is
        taken out of rotation, asked to cancel that request, and killed if it stays busy.
        """
        stray = report.request_id if report.request_id != child.request_id else None
        if stray is None or stray != child.stray_request:
            child.stray_request = stray
            child.stray_polls = 1 if stray is not None else 0
            return
        child.stray_polls += 1
        why = f"busy with request {stray}, which the pool did not give it"
        if child.stray_polls == STRAY_CANCEL_POLLS:
            log.warning("child_stray_request", child=child.id, request_id=stray, action="cancel", reason=why)
            if child.state is _S.READY:
                child.cool_down(CooldownReason.STRAY, None, why)
            if self.canceller is not None:
                self._background(self._cancel_stray(child, stray))
        elif child.stray_polls >= STRAY_KILL_POLLS:
            child.kill(self.launcher, f"{why}, for {child.stray_polls} health checks and after a cancel")

    async def _cancel_stray(self, child: Child, request_id: str) -> None:
        assert self.canceller is not None
        cancelled = await self.canceller(child.spec.ports.api, request_id, self.settings.health_timeout)
        log.info("child_stray_cancelled", child=child.id, request_id=request_id, cancelled=cancelled)

    def _started(self, child: Child) -> None:
        why = child.cooldown_reason
        until = child.cooldown_until if why in ACCOUNT_COOLDOWNS else None
        left = until - self.clock() if until is not None else 0.0
        if why is not None and until is not None and left > 0:
            # A quota cooldown is the account's, so it outlives a restart of the child (or of
            # the coordinator); an ejection was the old process's, and a fresh one starts clean.
            child.cool_down(why, until, f"health check passed; still in {why} cooldown for {left:.0f}s")
        else:
            child.ready("health check passed")

    def _background(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("supervisor_task_failed", task=task.get_name(), error=repr(task.exception()))
