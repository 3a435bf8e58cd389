"""Rendezvous hashing of profiles onto shards: stable, balanced, and minimal when N changes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from coordinator.lifecycle import shards
from coordinator.lifecycle.profiles import discover
from coordinator.lifecycle.shards import Shard, ShardError, owner
from coordinator.lifecycle.watch import ProfileWatcher

NAMES = [f"account-{number}" for number in range(1000)]
STATE = {"cookies": [{"name": "sid", "value": "v", "domain": "example.com"}], "origins": []}


def test_the_score_is_the_same_in_every_process() -> None:
    # A fixed value: a hash salted per process (Python's hash()) would give each host its own.
    assert shards.score(0, "alice") == 8129940427080201269
    assert shards.score(1, "alice") == 3786108468205633796
    code = "from coordinator.lifecycle.shards import owner; print(owner('alice', 3))"
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": seed},
            check=True,
        )
        assert done.stdout.strip() == str(owner("alice", 3)) == "2"


def test_each_profile_belongs_to_exactly_one_shard() -> None:
    for count in (1, 2, 3, 5):
        for name in NAMES[:200]:
            owners = [index for index in range(count) if Shard(index, count).owns(name)]
            assert owners == [owner(name, count)]


def test_shards_get_about_the_same_number_of_profiles() -> None:
    counts = Counter(owner(name, 4) for name in NAMES)
    assert set(counts) == {0, 1, 2, 3}
    assert all(200 <= count <= 300 for count in counts.values()), counts


def test_a_new_shard_takes_only_the_profiles_it_now_owns() -> None:
    moved = [name for name in NAMES if owner(name, 3) != owner(name, 4)]
    assert all(owner(name, 4) == 3 for name in moved)  # to the new shard, never between old ones
    assert {name for name in NAMES if owner(name, 4) == 3} == set(moved)
    assert 0.20 <= len(moved) / len(NAMES) <= 0.30  # about 1/4


def test_removing_the_last_shard_moves_only_its_profiles() -> None:
    moved = [name for name in NAMES if owner(name, 4) != owner(name, 3)]
    assert moved and all(owner(name, 4) == 3 for name in moved)


@pytest.mark.parametrize(
    ("text", "shard"), [("0/3", Shard(0, 3)), (" 2 / 3 ", Shard(2, 3)), ("0/1", Shard(0, 1))]
)
def test_parse(text: str, shard: Shard) -> None:
    assert shards.parse(text) == shard
    assert str(shard) == text.replace(" ", "")


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("3/3", "numbered 0 to 2"),
        ("1/0", "must be 1 to"),
        ("one/3", "is not I/N"),
        ("-1/3", "is not I/N"),
        ("", "I/N"),
    ],
)
def test_parse_refuses_what_cannot_be(text: str, said: str) -> None:
    with pytest.raises(ShardError, match=said):
        shards.parse(text)


def test_a_statefulset_pod_name_gives_its_ordinal() -> None:
    assert shards.from_hostname("coordinator-3", 4) == Shard(3, 4)
    assert shards.from_hostname("my-coordinator-0", 2) == Shard(0, 2)
    with pytest.raises(ShardError, match="does not end in -<number>"):
        shards.from_hostname("vm", 3)
    with pytest.raises(ShardError, match="only 3 shards"):
        shards.from_hostname("coordinator-3", 3)


def write_profiles(folder: Path, names: list[str]) -> None:
    for name in names:
        (folder / f"{name}.json").write_text(json.dumps(STATE))


def test_discovery_and_the_watcher_see_only_their_shard(tmp_path: Path) -> None:
    names = NAMES[:12]
    write_profiles(tmp_path, names)
    broken = next(name for name in NAMES[12:] if owner(name, 2) == 1)
    (tmp_path / f"{broken}.json").write_text("{broken")
    seen: set[str] = set()
    for index in (0, 1):
        shard = Shard(index, 2)
        found = discover(tmp_path, shard)
        mine = {profile.name for profile in found.profiles}
        assert mine == {name for name in names if owner(name, 2) == index}
        assert not mine & seen
        seen |= mine
        # A broken file is reported by its own shard only.
        assert [rejected.path.stem for rejected in found.rejected] == ([broken] if index == 1 else [])
        assert len(found.profiles) + len(found.rejected) + len(found.skipped) == 13
        scan = ProfileWatcher(tmp_path, shard).scan()
        assert scan is not None
        assert set(scan.valid) == mine
        assert scan.skipped == len(found.skipped)
    assert seen == set(names)
