"""One coordinator run: build the object graph, serve, and shut down in order.

`run()` is what the CLI calls. Signal handlers only set an event; the main coroutine
does the work. Shutdown: stop taking requests (/ready → 503), fail the queue with 503,
let in-flight requests finish within the grace period, close the server, stop every
child's process group. A second signal skips the waiting. SIGHUP only asks the supervisor
to scan the profiles folder at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import secrets
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
import uvloop

from coordinator.http_server import HttpServer, Limits
from coordinator.ledger.metrics import LedgerCollector, QuotaCollector
from coordinator.ledger.quota import DailyLimits, QuotaTally
from coordinator.ledger.writer import Ledger, LedgerConfig
from coordinator.lifecycle import ports as port_checks
from coordinator.lifecycle.child import ChildSpec
from coordinator.lifecycle.health import HealthReport, read_health, unreachable
from coordinator.lifecycle.process import Launcher
from coordinator.lifecycle.profiles import Profile
from coordinator.lifecycle.roster import Roster
from coordinator.lifecycle.states import SERVING
from coordinator.lifecycle.supervisor import Supervisor
from coordinator.serving.metrics import Metrics
from coordinator.serving.pool import Pool
from coordinator.serving.proxy import Proxy
from coordinator.serving.routes import App, refusal_body
from coordinator.serving.transport import Transport, TransportError, cancel_request
from coordinator.settings import Settings

log = structlog.get_logger("coordinator.runtime")

# After the drain: how long a connection still writing an answer may take before it is cut.
HTTP_CLOSE_SECONDS = 1.0
# File descriptors kept for the run itself, beyond client connections: logs, the
# listening socket, and per child its pipes and the link's keep-alive connections.
_RESERVED_FILES = 64
_FILES_PER_CHILD = 16


class StartupError(Exception):
    """The run cannot start as configured; the message says what to change."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run will start: the child specs, after every check passed."""

    specs: tuple[ChildSpec, ...]


def plan(settings: Settings, profiles: tuple[Profile, ...]) -> Plan:
    """Assign port triples and check that every port is free, before anything is spawned."""
    try:
        triples = port_checks.allocate(
            len(profiles),
            base_api=settings.base_api_port,
            base_stream=settings.base_stream_port,
            base_browser=settings.base_browser_port,
            step=settings.port_step,
        )
        wanted: dict[int, str] = {}
        for profile, triple in zip(profiles, triples, strict=True):
            for port, use in triple.uses().items():
                wanted[port] = f"{use} of profile {profile.name}"
        if settings.port in wanted:
            raise port_checks.PortError(
                f"the coordinator's --port {settings.port} is also the {wanted[settings.port]}; "
                "move one of them"
            )
        port_checks.check_free(wanted)
        check_host = "0.0.0.0" if settings.host in ("0.0.0.0", "") else settings.host
        port_checks.check_free({settings.port: "coordinator --port"}, host=check_host)
    except port_checks.PortError as exc:
        raise StartupError(str(exc)) from None
    return Plan(specs=tuple(ChildSpec(p, t) for p, t in zip(profiles, triples, strict=True)))


def http_limits(settings: Settings, children: int) -> Limits:
    """The public port's limits, with the connection cap kept under the file limit.

    The soft limit is raised to the hard one first (the usual soft limit, 1,024, would
    otherwise lock every new client out long before a sane cap); a cap that still does
    not fit is lowered, with a warning, rather than left to fail at accept().
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    room = soft - _RESERVED_FILES - _FILES_PER_CHILD * children
    max_connections = settings.max_connections
    if max_connections > room:
        log.warning(
            "connection_cap_lowered",
            asked=max_connections,
            allowed=max(1, room),
            file_limit=soft,
            hint="raise the file limit (ulimit -n) or lower --max-connections",
        )
        max_connections = max(1, room)
    return Limits(
        max_connections=max_connections,
        max_headers=settings.max_headers,
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        send_timeout=settings.send_timeout,
        keep_alive_timeout=settings.keep_alive_timeout,
    )


class HealthProbe:
    """The supervisor's `Prober` and `Canceller`, over the coordinator's own HTTP client to its children."""

    def __init__(self, transport: Transport, token: str) -> None:
        self.transport = transport
        self.token = token

    async def __call__(self, port: int, timeout: float) -> HealthReport:
        try:
            async with asyncio.timeout(timeout):
                status_code, raw = await self.transport.fetch(port, "GET", "/health")
        except TimeoutError:
            return unreachable(f"no answer within {timeout:g}s")
        except TransportError as exc:
            return unreachable(str(exc))
        return read_health(status_code, raw)

    async def cancel(self, port: int, request_id: str, timeout: float) -> bool:
        return await cancel_request(self.transport, port, self.token, request_id, timeout)


class Coordinator:
    """Everything one run holds: settings, the roster of children, supervisor, pool, proxy."""

    def __init__(self, settings: Settings, plan: Plan, child_env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.started_at = time.time()
        self.draining = False
        token = secrets.token_urlsafe(32)
        self.transport = Transport()
        self.metrics = Metrics()
        # The quota day's use per profile and model, counted from the ledger's rows of the
        # day so far; limits and weights asked per profile at each use (live reloads).
        self.quota = QuotaTally(
            DailyLimits.with_overrides(
                settings.daily_limits, profile_limits=self._profile_limits, weights=self._weight
            )
        )
        self.ledger = Ledger(
            LedgerConfig(settings.data_dir, days=settings.ledger_days, enabled=settings.ledger),
            on_rows=self.quota.ledger_rows,
        )
        if settings.ledger:
            self.quota.seed(self.ledger.path)
            self.quota.record_hit = self.ledger.record_hit
        self.metrics.registry.register(LedgerCollector(self.ledger))
        self.roster = Roster(settings.log_dir)
        for spec in plan.specs:
            self.roster.enlist(spec)
        probe = HealthProbe(self.transport, token)
        # Listeners hear a state change in this order: the supervisor (state file, stops),
        # the pool (hands a ready child to a waiter), the metrics.
        self.supervisor = Supervisor(
            settings,
            self.roster,
            launcher=Launcher(),
            prober=probe,
            canceller=probe.cancel,
            token=token,
            child_env=child_env or {},
        )
        self.pool = Pool(
            self.roster,
            max_queue=settings.max_queue,
            queue_timeout=settings.queue_timeout,
            eject_after=settings.eject_after,
            eject_cooldown=settings.eject_cooldown,
            eject_cooldown_max=settings.eject_cooldown_max,
            on_queue_wait=self.metrics.queue_wait.observe,
            service_estimate=min(30.0, settings.first_byte_timeout),
            permission_cooldown=settings.permission_cooldown,
            max_passed_over=settings.max_passed_over,
            quota=self.quota,
        )
        self.roster.subscribe(self.metrics.on_transition)
        self.proxy = Proxy(self.pool, settings, self.transport, token, self.metrics)
        self.metrics.watch(lambda: self.roster, self.pool.waiters.depth, self.pool.models)
        self.metrics.registry.register(
            QuotaCollector(self.quota, lambda: [(c.id, m) for c in self.roster for m in c.models])
        )

    def _profile_limits(self, profile: str) -> Mapping[str, int]:
        """A profile's own daily limits per model (`daily_limits` in its settings file), over
        the defaults; read at each use, so a live change of the file counts at once."""
        child = self.roster.get(profile)
        return child.spec.profile.settings.daily_limits if child is not None else {}

    def _weight(self, profile: str) -> float:
        """A profile's share of the requests where no limit is known (`weight` in its settings)."""
        child = self.roster.get(profile)
        return child.spec.profile.settings.weight if child is not None else 1.0

    def summary(self) -> dict[str, Any]:
        children = list(self.roster)
        by_state: dict[str, int] = {}
        for child in children:
            by_state[child.state.value] = by_state.get(child.state.value, 0) + 1
        serving = sum(1 for child in children if child.state in SERVING)
        status = "draining" if self.draining else ("ready" if serving else "unavailable")
        return {
            "status": status,
            "children": {
                "total": len(children),
                "serving": serving,
                "by_state": by_state,
                "list": [{"id": c.id, "state": c.state.value} for c in children],
            },
            "queue": {
                "waiting": len(self.pool.waiters),
                "max": self.settings.max_queue,
                "by_lane": {lane.value: count for lane, count in self.pool.waiters.depth().items()},
            },
            "in_flight": len(self.pool.active),
            "shard": self.shard(),
        }

    def shard(self) -> dict[str, int]:
        """Which shard this run is (0 of 1: it runs every profile) and how many files it skipped."""
        settings = self.settings
        skipped = self.supervisor.reconciler.skipped
        return {"index": settings.shard_index, "count": settings.shard_count, "skipped": skipped}

    async def drain(self, deadline: float, force: asyncio.Event) -> None:
        """Stop taking requests and wait for in-flight ones until `deadline` or `force`."""
        self.draining = True
        # Held open at least this long (answering 503), so that a load balancer marks this
        # host down before the port closes: a request it sends to a closing port is lost.
        linger_until = min(deadline, time.monotonic() + self.settings.drain_delay)
        self.pool.close("the coordinator is shutting down; retry against another instance or shortly")
        log.info(
            "draining", in_flight=len(self.pool.active), grace_seconds=round(deadline - time.monotonic(), 1)
        )
        while (
            (self.pool.active or time.monotonic() < linger_until)
            and time.monotonic() < deadline
            and not force.is_set()
        ):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(force.wait(), 0.05)
        if self.pool.active:
            log.warning("drain_incomplete", in_flight=len(self.pool.active))

    async def close(self) -> None:
        try:
            await self.supervisor.stop()
            self.transport.close()
        finally:
            # After the server: every request's row is queued by now; the thread writes them.
            await asyncio.to_thread(self.ledger.close)


async def serve(settings: Settings, plan: Plan, child_env: Mapping[str, str] | None = None) -> int:
    coordinator = Coordinator(settings, plan, child_env)
    stop = asyncio.Event()
    force = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("forced_shutdown", signal=sig.name)
            force.set()
        else:
            log.info("shutdown_requested", signal=sig.name)
            stop.set()

    def on_hangup() -> None:
        log.info("rescan_requested", signal="SIGHUP")
        coordinator.supervisor.rescan()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)

    server = HttpServer(
        App(coordinator),
        error_body=refusal_body,
        limits=http_limits(settings, len(plan.specs)),
        on_limit=coordinator.metrics.limit_met,
    )
    exit_code = 0
    try:
        coordinator.ledger.start()
        await coordinator.supervisor.start()
        try:
            await server.start(settings.host, settings.port)
        except OSError as exc:
            exit_code = 1
            log.error(
                "listen_failed",
                port=settings.port,
                error=str(exc),
                hint="free the port or pick another --port",
            )
        else:
            log.info("listening", url=f"http://{settings.host}:{settings.port}/v1", children=len(plan.specs))
            await stop.wait()
            await coordinator.drain(time.monotonic() + settings.grace_period, force)
            await server.shutdown(0 if force.is_set() else HTTP_CLOSE_SECONDS)
    finally:
        await coordinator.close()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        log.info("stopped", exit_code=exit_code)
    return exit_code


def run(settings: Settings, plan: Plan, child_env: Mapping[str, str] | None = None) -> int:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(serve(settings, plan, child_env))
