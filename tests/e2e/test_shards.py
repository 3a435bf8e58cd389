"""Two coordinators, shards 0/2 and 1/2, on one shared profiles folder, with mock children.

Each profile is live on exactly one of them and together they run all; a file added
while they run starts on its shard only; `coordinator status` with both URLs prints one
table of every profile with the host that runs it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from coordinator.lifecycle.shards import owner
from tests.support.coordinator import Coordinator, Runs, write_profile
from tests.support.processes import wait_for

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "coordinator.rules.yml"
NAMES = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta")
POLL = ["--profiles-poll", "0.3"]


@pytest.fixture(scope="module")
def shards(module_runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> tuple[Coordinator, Coordinator]:
    folder = tmp_path_factory.mktemp("shared") / "profiles"
    folder.mkdir()
    for name in NAMES:
        write_profile(folder, name)
    # Runs.start writes the files again, with the same content: no change to a running shard.
    return (
        module_runs.start(NAMES, profiles_dir=folder, args=[*POLL, "--shard", "0/2"]),
        module_runs.start(NAMES, profiles_dir=folder, args=[*POLL, "--shard", "1/2"]),
    )


def live(run: Coordinator) -> set[str]:
    return {child["id"] for child in run.children().values() if child["state"] == "ready"}


def test_each_profile_is_live_on_exactly_one_shard(shards: tuple[Coordinator, Coordinator]) -> None:
    first, second = shards
    assert live(first) == {name for name in NAMES if owner(name, 2) == 0} == set(first.children())
    assert live(second) == {name for name in NAMES if owner(name, 2) == 1} == set(second.children())
    assert live(first) | live(second) == set(NAMES)
    assert live(first) and live(second)
    for index, run in enumerate(shards):
        ready = run.get("/ready").json()
        skipped = len(NAMES) - len(run.children())
        assert ready["shard"] == {"index": index, "count": 2, "skipped": skipped}
        assert run.get("/health").json()["shard"] == ready["shard"]
        assert run.get("/admin/children").json()["shard"] == ready["shard"]
        answer = run.post(
            "/v1/chat/completions", json={"model": "mock", "messages": [{"role": "user", "content": "hi"}]}
        )
        assert answer.status_code == 200


def test_a_file_added_live_starts_on_its_shard_only(shards: tuple[Coordinator, Coordinator]) -> None:
    added = [
        name
        for name in ("eta", "theta", "iota", "kappa")
        if not (shards[0].profiles / f"{name}.json").exists()
    ]
    for name in added:
        write_profile(shards[0].profiles, name)

    def started() -> bool:
        return all(name in live(shards[owner(name, 2)]) for name in added)

    wait_for(started, 30, "each new file to start on its shard")
    for name in added:
        assert name not in shards[1 - owner(name, 2)].children()
    assert {owner(name, 2) for name in added} == {0, 1}  # both shards took one
    # The other shard counted the new file as skipped, at its next scan.
    total = len(NAMES) + len(added)

    def counted() -> bool:
        return all(
            run.get("/ready").json()["shard"]["skipped"] == total - len(run.children()) for run in shards
        )

    wait_for(counted, 30, "the skipped counts to include the new files")
    # A removed file stops on its shard; the other never had it.
    gone = added[0]
    (shards[0].profiles / f"{gone}.json").unlink()
    wait_for(lambda: all(gone not in run.children() for run in shards), 30, f"{gone} to leave its shard")


def test_status_with_both_urls_prints_one_table(shards: tuple[Coordinator, Coordinator]) -> None:
    first, second = shards
    done = first.status("--url", second.url)  # --url first.url, then this one
    assert done.returncode == 0, done.stderr
    heads, grid = done.stdout.split("\n\n")[:2]
    assert f"coordinator at {first.url} (shard 0/2," in heads
    assert f"coordinator at {second.url} (shard 1/2," in heads
    header, *rows = grid.splitlines()
    assert header.split()[:2] == ["HOST", "PROFILE"]
    hosts = {row.split()[1]: row.split()[0] for row in rows}
    assert set(hosts) == set(first.children()) | set(second.children())
    for run in shards:
        assert {name for name, host in hosts.items() if host == f"127.0.0.1:{run.port}"} == set(
            run.children()
        )
    # One of them gone: the other's rows still come, and the exit status says one failed.
    comma = first.status("--url", f"{second.url},http://127.0.0.1:9")
    assert comma.returncode == 1
    assert "coordinator at http://127.0.0.1:9: unreachable" in comma.stdout
    assert all(name in comma.stdout for name in NAMES)


def test_a_shard_with_no_profile_of_its_own_starts_and_waits(module_runs: Runs, tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    write_profile(folder, "alpha")  # shard 0's of 2
    run = module_runs.start((), profiles_dir=folder, args=[*POLL, "--shard", "1/2"], wait_ready=False)
    assert run.events("shard_empty") and run.children() == {}
    assert run.get("/ready").status_code == 503
    write_profile(folder, "beta")
    wait_for(lambda: "beta" in live(run), 30, "a profile of this shard to start")


def test_the_fleet_rules_name_metrics_the_shards_export_and_sums_add_up(
    shards: tuple[Coordinator, Coordinator],
) -> None:
    def scrape(run: Coordinator) -> dict[str, list[tuple[str, dict[str, str], float]]]:
        text = run.get("/metrics").text
        return {family.name: family.samples for family in text_string_to_metric_families(text)}  # type: ignore[misc]

    def requests(run: Coordinator) -> float:
        return sum(
            sample[2] for sample in scrape(run)["coordinator_requests"] if sample[0].endswith("_total")
        )

    before = [requests(run) for run in shards]
    ask = {"model": "mock", "messages": [{"role": "user", "content": "count me"}]}
    for run, count in zip(shards, (2, 3), strict=True):
        for _ in range(count):
            assert run.post("/v1/chat/completions", json=ask).status_code == 200
    # The fleet's total is the plain sum of each host's: no series is counted twice.
    assert sum(requests(run) for run in shards) - sum(before) == 5
    exported = set(scrape(shards[0]))
    named = set(re.findall(r"\bcoordinator_[a-z_]+", RULES.read_text()))
    suffixes = ("_total", "_bucket", "_sum", "_count")
    unknown = {
        name
        for name in named
        if name not in exported and not any(name.removesuffix(s) in exported for s in suffixes)
    }
    assert not unknown, f"the rules name metrics the coordinator does not export: {sorted(unknown)}"
    assert len(named) >= 15
    assert yaml.safe_load(RULES.read_text())["groups"]


def can_name_a_host() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    done = subprocess.run([unshare, "--uts", "hostname", "coordinator-1"], capture_output=True, timeout=10)
    return done.returncode == 0


@pytest.mark.skipif(
    not can_name_a_host(), reason="needs `unshare --uts` (root) to give a run its own hostname"
)
def test_the_shard_comes_from_a_statefulset_hostname(module_runs: Runs, tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    # The coordinator runs under the hostname coordinator-1, as pod 1 of a StatefulSet.
    wrap = ["unshare", "--uts", "sh", "-c", 'hostname coordinator-1 && exec "$@"', "sh"]
    run = module_runs.start(NAMES, profiles_dir=folder, args=[*POLL, "--shard-from-hostname", "2"], wrap=wrap)
    assert run.get("/ready").json()["shard"] == {"index": 1, "count": 2, "skipped": 3}
    assert set(run.children()) == {name for name in NAMES if owner(name, 2) == 1}
