"""API keys: /v1 and /admin need one; probes and metrics stay open; keys are never logged."""

from __future__ import annotations

from pathlib import Path

import openai
import psutil
import pytest

from tests.support.coordinator import Coordinator, Runs

KEYS = ("key-one-ABC", "key-two-XYZ")
ASK = {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}
PROTECTED = [
    ("POST", "/v1/chat/completions", ASK),
    ("GET", "/v1/models", None),
    ("POST", "/v1/cancel/nothing", None),
    ("GET", "/admin/children", None),
    ("POST", "/admin/children/a/drain", None),
]


@pytest.fixture(scope="module")
def locked(module_runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> Coordinator:
    key_file = tmp_path_factory.mktemp("keys") / "keys.txt"
    key_file.write_text(f"# rotated monthly\n{KEYS[1]}\n\n")
    return module_runs.start(
        ("a", "b"),
        env={"COORDINATOR_API_KEY": KEYS[0]},
        args=["--api-key-file", str(key_file)],
        api_key=KEYS[0],
    )


def call(run: Coordinator, method: str, path: str, body: object, headers: dict[str, str]) -> int:
    response = (
        run.get(path, headers=headers) if method == "GET" else run.post(path, json=body, headers=headers)
    )
    return response.status_code


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_each_protected_route_refuses_a_missing_or_wrong_key(
    locked: Coordinator, method: str, path: str, body: object
) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"X-API-Key": "wrong"},
        {"Authorization": "Basic x"},
    ):
        response = (
            locked.get(path, headers=headers)
            if method == "GET"
            else locked.post(path, json=body, headers=headers)
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED[:4])
def test_each_protected_route_accepts_either_key_either_way(
    locked: Coordinator, method: str, path: str, body: object
) -> None:
    assert call(locked, method, path, body, {"Authorization": f"Bearer {KEYS[0]}"}) != 401
    assert call(locked, method, path, body, {"X-API-Key": KEYS[1]}) != 401


def test_probes_and_metrics_stay_open(locked: Coordinator) -> None:
    for path in ("/live", "/ready", "/health", "/metrics"):
        assert locked.get(path).status_code == 200


def test_the_openai_client_uses_its_key(locked: Coordinator) -> None:
    answer = locked.openai(api_key=KEYS[1]).chat.completions.create(**ASK)
    assert answer.choices[0].message.content == "echo: hi"
    with pytest.raises(openai.AuthenticationError):
        locked.openai(api_key="nope").chat.completions.create(**ASK)


def test_children_do_not_get_the_keys(locked: Coordinator) -> None:
    for child in locked.children().values():
        environ = psutil.Process(child["pid"]).environ()
        assert "COORDINATOR_API_KEY" not in environ and KEYS[0] not in environ.values()


def test_keys_are_never_logged(locked: Coordinator) -> None:
    locked.post("/v1/chat/completions", json=ASK, headers={"Authorization": f"Bearer {KEYS[0]}"})
    locked.post("/v1/chat/completions", json=ASK, headers={"Authorization": "Bearer wrong-guess"})
    logs = locked.output() + "".join(p.read_text() for p in Path(locked.log_dir).glob("*.log"))
    for secret in (*KEYS, "wrong-guess"):
        assert secret not in logs
