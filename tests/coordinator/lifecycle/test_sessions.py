"""The supervisor and the accounts: model quotas from /health (kept across runs), and a
child's write-back of its own profile file (no restart for it), on fake processes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from coordinator.lifecycle.health import HealthReport
from coordinator.lifecycle.states import ChildState
from coordinator.protocol.link import ChildArgs
from coordinator.protocol.writeback import add_to_record, digest
from tests.coordinator.lifecycle.test_supervisor import Rig, build
from tests.support.lifecycle import until

S = ChildState
MODELS = ("flash", "pro")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = build(tmp_path, ("a",))
    await rig.supervisor.start_children()
    yield rig
    await rig.supervisor.stop()


def saved_models(rig: Rig) -> dict[str, object]:
    document = json.loads((rig.settings.log_dir / "cooldowns.json").read_text())
    models: dict[str, object] = document.get("models", {})
    return models


async def test_a_model_out_of_quota_in_health_is_out_for_that_model_and_in_the_next_run(
    rig: Rig, tmp_path: Path
) -> None:
    child = rig.child("a")
    rig.answer("a", HealthReport(status="ready", models=MODELS, quota={"pro": 600.0}))
    await rig.ready("a")
    assert child.model_cooldowns == {"pro": rig.clock.now + 600.0} and rig.state("a") is S.READY
    await rig.tick()
    assert set(saved_models(rig)) == {"a"} and "pro" in saved_models(rig)["a"]  # type: ignore[operator]
    # The same report again is no news: the end stays where it was.
    rig.clock.advance(rig.settings.health_interval)
    await rig.supervisor.probe_due()
    assert child.model_cooldowns == {"pro": rig.clock.now - rig.settings.health_interval + 600.0}
    await rig.supervisor.stop()

    second = build(tmp_path, ("a",))
    await second.supervisor.start_children()
    try:
        again = second.child("a")
        left = again.model_cooldowns["pro"] - second.clock.now
        assert 590 < left <= 600, "a model quota outlives the coordinator"
        second.supervisor.restart(again)  # an operator's restart clears it, in the file too
        await second.tick()
        assert again.model_cooldowns == {} and saved_models(second) == {}
    finally:
        await second.supervisor.stop()


async def test_a_model_quota_ends_on_time(rig: Rig) -> None:
    child = rig.child("a")
    rig.answer("a", HealthReport(status="ready", models=MODELS, quota={"pro": 30.0}))
    await rig.ready("a")
    rig.prober.answers.clear()
    await rig.tick(29.0)
    assert "pro" in child.model_cooldowns
    with capture_logs() as logs:
        await rig.tick(2.0)
    assert child.model_cooldowns == {} and saved_models(rig) == {}
    assert [e["model"] for e in logs if e["event"] == "model_cooldown_over"] == ["pro"]


async def test_children_are_told_how_to_write_back_and_where_to_record_it(rig: Rig) -> None:
    child = rig.child("a")
    argv = rig.process("a").argv
    args = ChildArgs.parse(argv[argv.index("child") + 1 :])
    assert args.write_back_interval == rig.settings.write_back_interval == 1800
    assert args.write_back_requests == rig.settings.write_back_requests == 10
    assert args.write_back_record == child.write_back_record.resolve()
    assert args.write_back_record.is_absolute(), "the child runs in its own working directory"


async def test_the_childs_own_write_back_does_not_restart_it_but_a_users_file_does(rig: Rig) -> None:
    child = rig.child("a")
    await rig.ready("a")
    path = child.spec.profile.path
    refreshed = json.dumps({"cookies": [{"name": "sid", "value": "s2", "domain": "x"}], "origins": []})
    # As the child does it: the digest in its record first, then the file.
    child.write_back_record.parent.mkdir(parents=True, exist_ok=True)
    add_to_record(child.write_back_record, digest(refreshed.encode()))
    path.write_text(refreshed)
    with capture_logs() as logs:
        await rig.tick(1.0)
    assert rig.state("a") is S.READY and len(rig.launcher.processes) == 1
    assert [e["event"] for e in logs if e["event"].startswith("profile_")] == ["profile_written_back"]

    # A user's new file a moment later is theirs: the child restarts with it.
    path.write_text(refreshed.replace("s2", "user-login"))
    await rig.tick(1.0)
    assert rig.state("a") is S.DRAINING and child.restart_requested
    await rig.tick()  # idle: stopped at once, then started again
    await until(lambda: rig.state("a") is S.STARTING, "the restart for the user's file")
    assert len(rig.launcher.processes) == 2
