"""deploy/kubernetes/: valid against the Kubernetes schemas (offline), and consistent with
the coordinator and with itself: probes on routes it serves, settings it takes, a grace
period longer than the drain, selectors that select the pods."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer.main
import yaml

from coordinator.cli.main import app
from coordinator.serving.openapi import openapi

FOLDER = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
# The schemas kubernetes-validate bundles; the oldest Kubernetes still supported when written.
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(FOLDER.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                found.append((path.name, document))
    return found


def kind(name: str) -> dict[str, Any]:
    (found,) = [doc for _, doc in documents() if doc["kind"] == name]
    return found


def container() -> dict[str, Any]:
    spec = kind("StatefulSet")["spec"]["template"]["spec"]
    (coordinator,) = spec["containers"]
    result: dict[str, Any] = coordinator
    return result


def env() -> dict[str, str]:
    return {item["name"]: item["value"] for item in container()["env"]}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_against_the_schemas(version: str) -> None:
    checked = 0
    for name, document in documents():
        if document.get("kind") == "Kustomization":
            continue  # not a Kubernetes API object: kubectl's own file
        # Strict: a misspelt field is an error, not silently ignored.
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {document['kind']}: {exc.message}")
        checked += 1
    assert checked >= 5, "StatefulSet, two Services, a PodDisruptionBudget and the example Secrets"


def test_a_broken_manifest_is_refused() -> None:
    # The validator really checks: a probe with a port of the wrong type is refused.
    broken = kind("StatefulSet")
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = {"no": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_kustomization_lists_the_manifests_but_the_example_secrets() -> None:
    listed = yaml.safe_load((FOLDER / "kustomization.yaml").read_text())["resources"]
    manifests = {p.name for p in FOLDER.glob("*.yaml")} - {"kustomization.yaml", "secrets.example.yaml"}
    assert sorted(listed) == sorted(manifests)


def test_the_probes_ask_routes_the_coordinator_serves() -> None:
    paths = openapi()["paths"]
    probes = {
        name: container()[name]["httpGet"] for name in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    assert probes["livenessProbe"]["path"] == "/live" and probes["readinessProbe"]["path"] == "/ready"
    for probe in probes.values():
        assert probe["path"] in paths
        assert probe["port"] == container()["ports"][0]["name"]
    assert container()["ports"][0]["containerPort"] == 2048


def test_every_setting_is_one_the_coordinator_takes() -> None:
    run = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    known = {param.envvar for param in run.params if param.envvar}
    image_only = {"SUPERVISORD_STOPWAITSECS"}  # supervisord.conf reads it
    assert set(env()) - image_only <= known


def test_the_shard_count_is_the_replica_count() -> None:
    statefulset = kind("StatefulSet")
    assert int(env()["COORDINATOR_SHARD_FROM_HOSTNAME"]) == statefulset["spec"]["replicas"]


def test_the_grace_period_outlasts_the_drain() -> None:
    spec = kind("StatefulSet")["spec"]["template"]["spec"]
    settings = env()
    pre_stop = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = float(settings["COORDINATOR_GRACE_PERIOD"]) + float(settings["COORDINATOR_STOP_TIMEOUT"]) + 1
    stop_window = float(settings["SUPERVISORD_STOPWAITSECS"])
    assert drain < stop_window  # supervisord lets the coordinator finish
    assert float(pre_stop[1]) + stop_window < spec["terminationGracePeriodSeconds"]


def test_selectors_select_the_pods() -> None:
    statefulset = kind("StatefulSet")
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    selectors = [
        statefulset["spec"]["selector"]["matchLabels"],
        kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ]
    services = [doc for _, doc in documents() if doc["kind"] == "Service"]
    selectors += [service["spec"]["selector"] for service in services]
    assert all(selector.items() <= labels.items() for selector in selectors)
    headless = {s["metadata"]["name"]: s for s in services}[statefulset["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    assert len(services) == 2


def test_memory_is_sized_per_child() -> None:
    resources = container()["resources"]
    request = int(re.fullmatch(r"(\d+)Mi", resources["requests"]["memory"])[1])  # type: ignore[index]
    limit = int(re.fullmatch(r"(\d+)Mi", resources["limits"]["memory"])[1])  # type: ignore[index]
    # 80 MiB for the coordinator and supervisord, 450 MiB per child (docs/benchmarks.md).
    children = (request - 80) // 450
    assert children >= 1 and limit >= request
    assert f"{children} profiles: 80 + {children * 450}" in (FOLDER / "statefulset.yaml").read_text()
