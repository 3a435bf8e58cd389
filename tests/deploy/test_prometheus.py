"""deploy/prometheus/: the scrape configuration and the recording rules parse, and agree
with the Kubernetes manifests (which pods, which port). That each metric a rule names is
one the coordinator exports, and that sums over hosts add up, is checked against two real
shards in tests/e2e/test_shards.py."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")


def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((FOLDER / "prometheus.yml").read_text())
    return loaded


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((FOLDER / "coordinator.rules.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def job(name: str) -> dict[str, Any]:
    (found,) = [job for job in config()["scrape_configs"] if job["job_name"] == name]
    result: dict[str, Any] = found
    return result


def test_the_rule_files_are_there() -> None:
    assert [FOLDER / name for name in config()["rule_files"]] == [FOLDER / "coordinator.rules.yml"]


def test_three_static_hosts_each_with_its_shard() -> None:
    static = job("coordinator")["static_configs"]
    assert [group["labels"]["shard"] for group in static] == ["0/3", "1/3", "2/3"]
    targets = [target for group in static for target in group["targets"]]
    assert len(set(targets)) == 3 and all(target.endswith(":2048") for target in targets)
    assert job("coordinator")["metrics_path"] == "/metrics"


def test_kubernetes_discovery_keeps_the_statefulsets_pods() -> None:
    statefulset = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "statefulset.yaml").read_text())
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    kubernetes = job("coordinator-kubernetes")
    assert kubernetes["kubernetes_sd_configs"][0]["role"] == "pod"
    keeps = {
        rule["source_labels"][0]: rule["regex"]
        for rule in kubernetes["relabel_configs"]
        if rule.get("action") == "keep"
    }
    assert keeps["__meta_kubernetes_pod_label_app_kubernetes_io_name"] == labels["app.kubernetes.io/name"]
    assert keeps["__meta_kubernetes_pod_container_port_number"] == "2048"
    (shard,) = [rule for rule in kubernetes["relabel_configs"] if rule.get("target_label") == "shard"]
    assert re.fullmatch(shard["regex"], "coordinator-2")[1] == "2"  # type: ignore[index]


def test_every_rule_is_named_and_balanced() -> None:
    found = rules()
    records = [rule["record"] for rule in found if "record" in rule]
    assert len(records) == len(set(records)) >= 10
    for rule in found:
        assert ("record" in rule) != ("alert" in rule)
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")") and expr.count("[") == expr.count("]"), expr
        if "record" in rule:
            # level:metric:operations, Prometheus' naming convention for recorded series.
            assert re.fullmatch(r"coordinator:[a-z_]+:[a-z0-9_]+", rule["record"]), rule["record"]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed here: the files are parsed only")
def test_promtool_accepts_them() -> None:
    for command in (["check", "rules", str(FOLDER / "coordinator.rules.yml")],
                    ["check", "config", "--syntax-only", str(FOLDER / "prometheus.yml")]):  # fmt: skip
        done = subprocess.run([str(PROMTOOL), *command], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
