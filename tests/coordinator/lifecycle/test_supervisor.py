"""The supervisor's decisions, on fake processes, a fake clock and a fake /health: no process starts.

Each test drives the real `Supervisor` as its loops would (`tick`, `probe_due`) and
checks what an operator sees: states, reasons, processes started and signalled, the
state file, the roster.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from coordinator.lifecycle import ports as port_checks
from coordinator.lifecycle.child import Child, ChildSpec
from coordinator.lifecycle.health import HealthReport
from coordinator.lifecycle.profiles import Profile
from coordinator.lifecycle.roster import Roster
from coordinator.lifecycle.states import ChildState, CooldownReason
from coordinator.lifecycle.supervisor import Supervisor
from coordinator.protocol.link import EXIT_CONFIG, TOKEN_ENV
from coordinator.settings import Settings
from tests.support.lifecycle import (
    FakeClock,
    FakeLauncher,
    FakeProber,
    FakeProcess,
    profile_file,
    settle,
    until,
)

S = ChildState
BASE_API = 47110  # high ports, checked free by the reconcile when it adds a child


@dataclass
class Rig:
    supervisor: Supervisor
    roster: Roster
    launcher: FakeLauncher
    prober: FakeProber
    clock: FakeClock
    settings: Settings

    def child(self, name: str) -> Child:
        child = self.roster.get(name)
        assert child is not None, f"no child {name}"
        return child

    def state(self, name: str) -> ChildState:
        # A call, not an attribute: mypy would narrow `child.state` across the awaits.
        return self.child(name).state

    def process(self, name: str) -> FakeProcess:
        return self.launcher.of(self.child(name).spec.ports.api)

    def answer(self, name: str, report: HealthReport) -> None:
        self.prober.answer(self.child(name).spec.ports.api, report)

    async def ready(self, *names: str) -> None:
        """Ask every child's /health (the prober answers ready) and let them become ready."""
        await self.supervisor.probe_due()
        for name in names:
            assert self.child(name).state is S.READY, self.child(name).snapshot()

    async def exit(self, name: str, code: int) -> None:
        """The child's process ends with `code`; returns once the supervisor has acted on it."""
        before = self.state(name)
        self.process(name).exit(code)
        await until(lambda: self.state(name) is not before, f"the exit of {name} to be handled")
        await settle()

    async def tick(self, seconds: float = 0.0) -> None:
        self.clock.advance(seconds)
        self.supervisor.tick()
        await settle()


def build(tmp_path: Path, names: tuple[str, ...], **overrides: Any) -> Rig:
    """A supervisor of `names` over `tmp_path`, not started; profile files are written if missing.

    `overrides` replace settings (e.g. a shard) before the supervisor is built."""
    folder = tmp_path / "profiles"
    folder.mkdir(exist_ok=True)
    settings = Settings(
        profiles=folder,
        log_dir=tmp_path / "logs",
        port=BASE_API - 1,
        base_api_port=BASE_API,
        base_stream_port=BASE_API + 100,
        base_browser_port=BASE_API + 200,
        restart_backoff=1.0,
        restart_backoff_max=8.0,
        max_start_failures=3,
        healthy_run=30.0,
        health_interval=2.0,
        health_failures=2,
        start_timeout=20.0,
        stop_timeout=0.05,
        profiles_poll=1.0,
    )
    settings = dataclasses.replace(settings, **overrides)
    clock = FakeClock()
    roster = Roster(settings.log_dir, clock=clock)
    triples = port_checks.allocate(len(names), base_api=BASE_API, base_stream=BASE_API + 100,
                                   base_browser=BASE_API + 200, step=1)  # fmt: skip
    for name, triple in zip(names, triples, strict=True):
        path = folder / f"{name}.json"
        roster.enlist(ChildSpec(Profile(name, path if path.exists() else profile_file(folder, name)), triple))
    launcher, prober = FakeLauncher(), FakeProber()
    supervisor = Supervisor(
        settings,
        roster,
        launcher=launcher,
        prober=prober,
        canceller=prober.cancel,
        token="t0ken",
        clock=clock,
    )
    return Rig(supervisor, roster, launcher, prober, clock, settings)


@pytest.fixture
async def rig(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    rig = build(tmp_path, getattr(request, "param", ("a",)))
    await rig.supervisor.start_children()
    yield rig
    await rig.supervisor.stop()
    assert not rig.launcher.alive(), "a fake process outlived the supervisor's stop"


async def test_children_start_with_their_ports_and_token_and_serve_once_healthy(rig: Rig) -> None:
    child = rig.child("a")
    assert rig.state("a") is S.STARTING and child.running
    process = rig.process("a")
    assert str(child.spec.ports.api) in process.argv and process.env[TOKEN_ENV] == "t0ken"
    await rig.ready("a")
    assert child.models == ("mock",)


async def test_an_exit_restarts_with_a_growing_backoff_reset_after_a_healthy_run(rig: Rig) -> None:
    child = rig.child("a")
    await rig.ready("a")
    delays = []
    for _ in range(2):
        rig.process("a").say("oops")
        await rig.exit("a", 1)
        assert rig.state("a") is S.BACKOFF and child.last_error == "exit code 1; last output: oops"
        assert child.next_start_at is not None
        delays.append(child.next_start_at - rig.clock.now)
        await rig.tick(delays[-1] - 0.01)
        assert rig.state("a") is S.BACKOFF, "started again before its backoff was over"
        await rig.tick(0.02)
        assert rig.state("a") is S.STARTING and child.restarts == len(delays)
        await rig.ready("a")
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0
    # A run longer than `healthy_run` forgives the earlier exits.
    rig.clock.advance(rig.settings.healthy_run + 0.1)
    await rig.exit("a", 1)
    assert child.failures == 1 and child.next_start_at is not None
    assert child.next_start_at - rig.clock.now <= 1.0
    assert len(rig.launcher.processes) == 3


async def test_a_child_that_never_becomes_ready_ends_fatal_until_restarted(rig: Rig) -> None:
    child = rig.child("a")
    for attempt in range(3):
        await rig.exit("a", 1)
        if attempt < 2:
            assert rig.state("a") is S.BACKOFF
            await rig.tick(10.0)
            assert rig.state("a") is S.STARTING
    assert rig.state("a") is S.FATAL and child.start_failures == 3
    await rig.tick(3600.0)
    assert rig.state("a") is S.FATAL and len(rig.launcher.processes) == 3
    rig.supervisor.restart(child)
    await settle()
    assert rig.state("a") is S.STARTING and len(rig.launcher.processes) == 4
    await rig.ready("a")


async def test_a_configuration_error_is_fatal_at_once(rig: Rig) -> None:
    child = rig.child("a")
    rig.process("a").say("error: --site-config: no such file")
    await rig.exit("a", EXIT_CONFIG)
    assert rig.state("a") is S.FATAL
    assert child.last_error is not None and "no such file" in child.last_error
    await rig.tick(3600.0)
    assert len(rig.launcher.processes) == 1


async def test_a_spawn_that_fails_is_a_failed_start(rig: Rig) -> None:
    child = rig.child("a")
    await rig.exit("a", 1)
    rig.launcher.spawn_error = FileNotFoundError("no such interpreter")
    await rig.tick(10.0)
    assert rig.state("a") is S.BACKOFF and child.last_error == "could not start: no such interpreter"
    assert child.start_failures == 2


async def test_a_hung_child_is_killed_and_restarted(rig: Rig) -> None:
    child = rig.child("a")
    await rig.ready("a")
    hung = rig.process("a")
    rig.prober.hang(child.spec.ports.api)
    for _ in range(2):
        rig.clock.advance(rig.settings.health_interval)
        await rig.supervisor.probe_due()
    await until(lambda: rig.state("a") is S.BACKOFF, "the hung child to be killed")
    assert hung.signals == [signal.SIGKILL]
    assert child.last_error is not None and "did not pass 2 health checks in a row" in child.last_error
    rig.prober.answers.clear()
    await rig.tick(10.0)
    await rig.ready("a")
    assert rig.process("a") is not hung


async def poll(rig: Rig, times: int = 1) -> None:
    for _ in range(times):
        rig.clock.advance(rig.settings.health_interval)
        await rig.supervisor.probe_due()
        await settle()


async def test_a_child_busy_with_a_request_the_pool_did_not_give_it_is_cancelled_and_serves_again(
    rig: Rig,
) -> None:
    child = rig.child("a")
    await rig.ready("a")
    rig.answer("a", HealthReport(status="busy", models=("mock",), request_id="lost-1"))
    await poll(rig)  # once may be a request finishing just after the pool let it go
    assert rig.state("a") is S.READY and rig.prober.cancelled == []
    await poll(rig)
    assert rig.state("a") is S.COOLDOWN and child.cooldown_reason is CooldownReason.STRAY
    assert rig.prober.cancelled == [(child.spec.ports.api, "lost-1")]
    await poll(rig)  # still busy: it stays out
    assert rig.state("a") is S.COOLDOWN
    rig.prober.answers.clear()  # the cancel took: idle again
    await poll(rig)
    assert rig.state("a") is S.READY
    assert rig.process("a").signals == []


async def test_a_child_that_stays_busy_with_a_stray_request_is_killed_and_restarted(rig: Rig) -> None:
    child = rig.child("a")
    await rig.ready("a")
    stuck = rig.process("a")
    rig.answer("a", HealthReport(status="busy", models=("mock",), request_id="lost-1"))
    await poll(rig, 4)
    await until(lambda: rig.state("a") is S.BACKOFF, "the stuck child to be killed")
    assert stuck.signals == [signal.SIGKILL]
    assert child.last_error is not None and "busy with request lost-1" in child.last_error
    rig.prober.answers.clear()
    await rig.tick(10.0)
    await rig.ready("a")
    assert rig.process("a") is not stuck


async def test_a_child_busy_with_the_request_the_pool_gave_it_is_left_alone(rig: Rig) -> None:
    child = rig.child("a")
    await rig.ready("a")
    child.take("mine")
    rig.answer("a", HealthReport(status="busy", models=("mock",), request_id="mine"))
    await poll(rig, 5)
    assert rig.state("a") is S.BUSY and rig.prober.cancelled == []


async def test_models_are_the_ones_a_child_names_once_it_can_serve(rig: Rig) -> None:
    # Starting, a browser child names its built-in models before it has read the page's list:
    # listed, they would be offered by /v1/models and then refused.
    child = rig.child("a")
    rig.answer("a", HealthReport(status="starting", models=("gemini-2.5-pro",)))
    await rig.supervisor.probe_due()
    assert child.models == ()
    rig.answer("a", HealthReport(status="ready", models=("replica-pro", "replica-flash")))
    await poll(rig)
    assert (rig.state("a"), rig.child("a").models) == (S.READY, ("replica-pro", "replica-flash"))


async def test_the_selectors_a_child_misses_are_kept_until_it_says_otherwise(rig: Rig) -> None:
    rig.answer("a", HealthReport(status="ready", models=("m",), selectors_missing=("prompt",)))
    await poll(rig)
    assert rig.child("a").selectors_missing == ("prompt",)
    assert rig.child("a").snapshot()["selectors_missing"] == ["prompt"]
    rig.answer("a", HealthReport(status="ready", models=("m",)))
    await poll(rig)
    assert rig.child("a").selectors_missing == ()


async def test_a_child_not_ready_in_time_is_killed(rig: Rig) -> None:
    child = rig.child("a")
    rig.answer("a", HealthReport(status="starting"))
    await rig.supervisor.probe_due()
    await rig.tick(rig.settings.start_timeout + 1)
    await until(lambda: rig.state("a") is S.BACKOFF, "the slow starter to be killed")
    assert child.last_error is not None and "not ready 20s after start" in child.last_error


async def test_drain_lets_the_request_in_hand_finish_then_stops(rig: Rig) -> None:
    child = rig.child("a")
    await rig.ready("a")
    child.take("r1")  # as the pool does
    rig.supervisor.drain(child)
    await rig.tick(1.0)
    assert rig.state("a") is S.DRAINING and child.running, "stopped with a request in hand"
    child.release()  # the request ends; the pool leaves a draining child to the supervisor
    await rig.tick()
    await until(lambda: rig.state("a") is S.STOPPED, "the drained child to stop")
    assert rig.launcher.processes[0].signals == [signal.SIGTERM]
    await rig.tick(3600.0)
    assert len(rig.launcher.processes) == 1, "a drained child was started again"
    rig.supervisor.restart(child)
    await settle()
    await rig.ready("a")


async def test_a_restart_of_a_busy_child_comes_after_its_request(rig: Rig) -> None:
    child = rig.child("a")
    await rig.ready("a")
    rig.launcher.processes[0].ignores_term = True  # SIGKILL after `stop_timeout`
    child.take("r1")
    rig.supervisor.restart(child)
    await rig.tick()
    assert rig.state("a") is S.DRAINING
    child.release()
    await rig.tick()
    assert rig.state("a") is S.STOPPING
    await until(lambda: rig.state("a") is S.STARTING, "the restart")
    first, second = rig.launcher.processes
    assert first.signals == [signal.SIGTERM, signal.SIGKILL] and second.returncode is None


async def test_no_stop_is_scheduled_while_the_child_is_being_spawned(rig: Rig) -> None:
    child = rig.child("a")
    await rig.exit("a", 1)
    rig.launcher.gate = asyncio.Event()
    await rig.tick(10.0)
    assert rig.state("a") is S.STARTING and child.process is None  # the spawn waits at the gate
    rig.supervisor.drain(child)
    await rig.tick()
    assert rig.state("a") is S.DRAINING, "a stop was scheduled before there was a process to stop"
    rig.launcher.gate.set()
    await settle()
    spawned = rig.launcher.processes[-1]
    assert spawned.returncode is None
    await rig.tick()
    await until(lambda: rig.state("a") is S.STOPPED, "the late process to be stopped")
    assert spawned.signals == [signal.SIGTERM]


async def test_a_quota_report_cools_down_remembers_it_and_ends_on_time(rig: Rig) -> None:
    child = rig.child("a")
    await rig.ready("a")
    rig.answer("a", HealthReport(status="quota_exhausted", detail="limit", retry_after=60.0))
    rig.clock.advance(rig.settings.health_interval)
    await rig.supervisor.probe_due()
    assert rig.state("a") is S.COOLDOWN and child.cooldown_reason is CooldownReason.QUOTA
    state_file = rig.settings.log_dir / "cooldowns.json"
    assert json.loads(state_file.read_text())["profiles"]["a"]["reason"] == "quota"
    await rig.tick(59.0)
    assert rig.state("a") is S.COOLDOWN
    await rig.tick(2.0)
    assert rig.state("a") is S.READY
    assert "a" not in json.loads(state_file.read_text())["profiles"]


async def test_a_logged_out_child_is_stopped_and_kept_out_until_its_file_changes(rig: Rig) -> None:
    child = rig.child("a")
    await rig.ready("a")
    rig.answer("a", HealthReport(status="auth_expired", detail="sign in"))
    rig.clock.advance(rig.settings.health_interval)
    await rig.supervisor.probe_due()
    await until(lambda: rig.state("a") is S.AUTH_EXPIRED, "the logged-out child to stop")
    assert not child.running and child.last_error == "logged out: sign in"
    saved = json.loads((rig.settings.log_dir / "cooldowns.json").read_text())["profiles"]["a"]
    assert saved["reason"] == "auth_expired"
    await rig.tick(3600.0)
    assert len(rig.launcher.processes) == 1, "a logged-out profile was started again"
    rig.prober.answers.clear()
    profile_file(rig.settings.profiles, "a", session="fresh")
    await rig.tick(1.0)
    assert rig.state("a") is S.STARTING and len(rig.launcher.processes) == 2


async def test_profiles_folder_added_changed_invalid_and_removed(rig: Rig) -> None:
    await rig.ready("a")
    folder = rig.settings.profiles

    profile_file(folder, "b")
    await rig.tick(1.0)
    b = rig.child("b")
    assert rig.state("b") is S.STARTING and b.spec.ports.api == BASE_API + 1
    await rig.ready("a", "b")

    a = rig.child("a")
    a.take("r1")
    profile_file(folder, "a", session="s2")
    await rig.tick(1.0)
    assert rig.state("a") is S.DRAINING and a.restart_requested, "a changed file must wait for the request"
    a.release()
    await rig.tick()
    await until(lambda: rig.state("a") is S.STARTING, "the changed profile's restart")
    await rig.ready("a")

    (folder / "b.json").write_text("{half written")
    await rig.tick(1.0)
    assert rig.state("b") is S.READY, "an invalid file must leave its child as it is"

    (folder / "b.json").unlink()
    await rig.tick(1.0)
    assert rig.state("b") is S.DRAINING
    await rig.tick()  # idle: its process is stopped
    await until(lambda: rig.state("b") is S.STOPPED, "the removed profile's child to stop")
    await rig.tick()  # stopped: it leaves the roster
    assert [c.id for c in rig.roster] == ["a"] and not b.running and b.state is S.STOPPED


@pytest.mark.parametrize("rig", [("a", "b")], indirect=True)
async def test_shutdown_stops_every_process_group(rig: Rig) -> None:
    await rig.ready("a", "b")
    rig.launcher.processes[1].ignores_term = True
    await rig.supervisor.stop()
    assert [c.state for c in rig.roster] == [S.STOPPED, S.STOPPED]
    assert [p.signals for p in rig.launcher.processes] == [[signal.SIGTERM], [signal.SIGTERM, signal.SIGKILL]]


@pytest.mark.parametrize("rig", [("a", "b")], indirect=True)
async def test_quota_and_logged_out_profiles_stay_out_in_the_next_run(rig: Rig, tmp_path: Path) -> None:
    rig.answer("a", HealthReport(status="quota_exhausted", retry_after=600.0))
    rig.answer("b", HealthReport(status="auth_expired", detail="sign in"))
    await rig.supervisor.probe_due()
    await until(lambda: rig.state("b") is S.AUTH_EXPIRED, "b to stop as logged out")
    assert rig.state("a") is S.COOLDOWN
    await rig.supervisor.stop()

    second = build(tmp_path, ("a", "b"))
    await second.supervisor.start_children()
    try:
        assert second.state("b") is S.AUTH_EXPIRED and not second.child("b").running
        a = second.child("a")
        assert second.state("a") is S.STARTING and a.cooldown_reason is CooldownReason.QUOTA
        await second.supervisor.probe_due()  # healthy, but the account is still out of quota
        assert second.state("a") is S.COOLDOWN and a.cooldown_until is not None
        assert 590 < a.cooldown_until - second.clock.now <= 600
        second.supervisor.restart(a)  # an operator's restart clears it
        await second.tick()
        await until(lambda: second.state("a") is S.STARTING, "the restart")
        second.clock.advance(1.0)
        await second.supervisor.probe_due()
        assert second.state("a") is S.READY
    finally:
        await second.supervisor.stop()
