"""The cooldown state file: round trips, expiry, bad files, atomic writes, nothing secret."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from coordinator.lifecycle import cooldowns
from coordinator.lifecycle.cooldowns import Cooldowns, Entry, FileStamp, Reason


class Wall:
    """A settable wall clock."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_quota_and_auth_entries_survive_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "cooldowns.json"
    wall = Wall()
    store = Cooldowns(path, wall=wall)
    store.record_quota("alpha", 300)
    store.record_auth_expired("beta", FileStamp(mtime_ns=123, size=45))
    wall.now += 100
    again = Cooldowns(path, wall=wall)
    loaded = again.load()
    assert set(loaded) == {"alpha", "beta"}
    assert loaded["alpha"].reason is Reason.QUOTA
    assert again.remaining("alpha") == pytest.approx(200)
    assert loaded["beta"] == Entry(Reason.AUTH_EXPIRED, wall.now - 100, stamp=FileStamp(123, 45))
    assert again.remaining("beta") == 0.0
    assert again.remaining("nobody") == 0.0


def test_expired_quota_entries_are_dropped_and_auth_entries_kept(tmp_path: Path) -> None:
    path = tmp_path / "cooldowns.json"
    wall = Wall()
    store = Cooldowns(path, wall=wall)
    store.record_quota("short", 10)
    store.record_quota("long", 1000)
    store.record_auth_expired("out", FileStamp(1, 2))
    wall.now += 60
    assert set(Cooldowns(path, wall=wall).load()) == {"long", "out"}
    # The next write leaves the expired entry out of the file too.
    store.record_quota("other", 5)
    names = set(json.loads(path.read_text())["profiles"])
    assert names == {"long", "out", "other"}


def test_clear_removes_the_entry_and_says_whether_there_was_one(tmp_path: Path) -> None:
    path = tmp_path / "cooldowns.json"
    store = Cooldowns(path, wall=Wall())
    assert store.clear("alpha") is False
    assert not path.exists()  # nothing to forget: nothing written
    store.record_quota("alpha", 60)
    assert store.clear("alpha") is True
    assert store.get("alpha") is None
    assert json.loads(path.read_text())["profiles"] == {}


def test_the_file_holds_names_times_and_sizes_only(tmp_path: Path) -> None:
    path = tmp_path / "cooldowns.json"
    store = Cooldowns(path, wall=Wall(1000.0))
    store.record_quota("alpha", 30)
    store.record_auth_expired("beta", FileStamp(mtime_ns=7, size=8))
    document = json.loads(path.read_text())
    assert document == {
        "version": 1,
        "profiles": {
            "alpha": {"reason": "quota", "recorded_at": 1000.0, "until": 1030.0},
            "beta": {"reason": "auth_expired", "recorded_at": 1000.0, "mtime_ns": 7, "size": 8},
        },
    }


def test_writes_are_atomic_and_leave_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "cooldowns.json"  # the folder is created on the first write
    store = Cooldowns(path, wall=Wall())
    for index in range(5):
        store.record_quota(f"p{index}", 60)
    assert sorted(os.listdir(path.parent)) == ["cooldowns.json"]


def test_a_failed_write_is_logged_and_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    store = Cooldowns(blocker / "cooldowns.json", wall=Wall())
    with capture_logs() as logs:
        store.record_quota("alpha", 60)
    assert [e["event"] for e in logs] == ["cooldowns_not_saved"]
    assert store.get("alpha") is not None  # still in force for this run


@pytest.mark.parametrize(
    "content",
    ["{oops", "[]", '{"profiles": []}', b"\xff\xfe".decode("latin-1")],
)
def test_an_unusable_file_means_no_cooldowns(tmp_path: Path, content: str) -> None:
    path = tmp_path / "cooldowns.json"
    path.write_text(content, encoding="latin-1")
    with capture_logs() as logs:
        assert cooldowns.load(path, now=0.0) == {}
    assert [e["event"] for e in logs] == ["cooldowns_unreadable"]


def test_a_missing_file_means_no_cooldowns_silently(tmp_path: Path) -> None:
    with capture_logs() as logs:
        assert cooldowns.load(tmp_path / "absent.json", now=0.0) == {}
    assert logs == []


def test_entries_of_an_unknown_shape_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "cooldowns.json"
    good = {"reason": "quota", "recorded_at": 1.0, "until": 500.0}
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "profiles": {
                    "good": good,
                    "no_until": {"reason": "quota", "recorded_at": 1.0},
                    "bool_until": {"reason": "quota", "until": True},
                    "odd_reason": {"reason": "vacation", "until": 500.0},
                    "no_stamp": {"reason": "auth_expired", "mtime_ns": 3},
                    "not_an_object": 7,
                },
            }
        )
    )
    with capture_logs() as logs:
        loaded = cooldowns.load(path, now=100.0)
    assert set(loaded) == {"good"}
    assert loaded["good"].remaining(100.0) == 400.0
    skipped = {e["profile"] for e in logs if e["event"] == "cooldown_entry_ignored"}
    assert skipped == {"no_until", "bool_until", "odd_reason", "no_stamp", "not_an_object"}


def test_file_stamp_of_a_file_and_of_nothing(tmp_path: Path) -> None:
    path = tmp_path / "alpha.json"
    path.write_text("12345")
    stamp = FileStamp.of(path)
    assert stamp is not None and stamp.size == 5 and stamp.mtime_ns == path.stat().st_mtime_ns
    assert FileStamp.of(tmp_path / "missing.json") is None


def test_model_quotas_and_rate_limits_survive_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "cooldowns.json"
    wall = Wall(1000.0)
    store = Cooldowns(path, wall=wall)
    store.set_models("alpha", {"pro": 600.0, "flash": 30.0})
    store.record_quota("beta", 300, Reason.RATE_LIMITED)
    assert json.loads(path.read_text())["models"] == {
        "alpha": {"flash": {"until": 1030.0}, "pro": {"until": 1600.0}}
    }
    wall.now += 100
    again = Cooldowns(path, wall=wall)
    assert again.load()["beta"].reason is Reason.RATE_LIMITED
    assert again.model_remaining("alpha") == {"pro": pytest.approx(500)}, "flash's quota reset meanwhile"
    assert again.remaining("beta") == pytest.approx(200)
    # A profile's entry and its model quotas are apart: clearing one leaves the other.
    again.clear("beta")
    again.set_models("alpha", {})
    assert again.model_remaining("alpha") == {}
    assert json.loads(path.read_text()) == {"version": 1, "profiles": {}}


def test_only_timed_reasons_are_recorded_as_quota(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a cooldown that ends at a time"):
        Cooldowns(tmp_path / "c.json", wall=Wall()).record_quota("alpha", 10, Reason.AUTH_EXPIRED)
