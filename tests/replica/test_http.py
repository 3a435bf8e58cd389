"""The replica's HTTP surface without a browser: login, the page's backend, the run record."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from child.replica import SESSION_COOKIE, ReplicaConfig, ReplicaServer, answer_for, serve
from tests.support.processes import free_port, stop_process_group, wait_for
from tests.support.replica import SESSION, StartReplica, ThreadedReplica

REPO = Path(__file__).resolve().parents[2]
LOGIN_REDIRECT = "/login?continue=/prompts/new_chat"


def as_session(replica: ThreadedReplica, session: str = SESSION) -> httpx.Client:
    return httpx.Client(base_url=replica.url, cookies={SESSION_COOKIE: session}, timeout=5.0)


def generate(client: httpx.Client, prompt: str = "hello", **settings: Any) -> httpx.Response:
    return client.post("/api/GenerateContent", json={"prompt": prompt, "model": "replica-pro", **settings})


@pytest.mark.parametrize("path", ["/prompts/new_chat", "/"])
@pytest.mark.parametrize("cookie", [None, "not-a-session"])
def test_pages_redirect_to_login_without_an_accepted_session(
    replica: ThreadedReplica, path: str, cookie: str | None
) -> None:
    cookies = {SESSION_COOKIE: cookie} if cookie else {}
    response = httpx.get(replica.url + path, cookies=cookies, follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == LOGIN_REDIRECT


def test_configured_session_gets_the_chat_page(replica: ThreadedReplica) -> None:
    with as_session(replica) as client:
        response = client.get("/prompts/new_chat")
        assert response.status_code == 200
        assert "ms-prompt-input-wrapper" in response.text
        assert client.get("/", follow_redirects=False).headers["location"] == "/prompts/new_chat"


def test_login_form_issues_a_session_that_is_accepted_afterwards(replica: ThreadedReplica) -> None:
    with httpx.Client(base_url=replica.url, timeout=5.0) as client:
        form = client.get(LOGIN_REDIRECT)
        assert form.status_code == 200
        for needle in ('name="email"', 'name="password"', 'id="sign-in"', 'value="/prompts/new_chat"'):
            assert needle in form.text
        response = client.post(
            "/login", data={"email": "a@b.c", "password": "x", "continue": "/prompts/new_chat"}
        )
        assert response.status_code == 302
        assert response.headers["location"] == "/prompts/new_chat"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=")
        for attribute in ("HttpOnly", "Path=/", "SameSite=lax"):
            assert attribute.lower() in cookie.lower()
        assert client.get("/prompts/new_chat").status_code == 200


def test_login_never_continues_to_another_host(replica: ThreadedReplica) -> None:
    response = httpx.post(replica.url + "/login", data={"email": "a", "continue": "//evil.example/x"})
    assert response.headers["location"] == "/prompts/new_chat"


def test_list_models(replica: ThreadedReplica) -> None:
    with as_session(replica) as client:
        body = client.get("/api/ListModels").json()
    assert [model["name"] for model in body["models"]] == ["models/replica-pro", "models/replica-flash"]
    assert body["models"][0]["displayName"] == "Replica Pro"
    assert httpx.get(replica.url + "/api/ListModels").status_code == 401


def test_generate_returns_tokens_of_the_answer_and_records_the_run(replica: ThreadedReplica) -> None:
    with as_session(replica) as client:
        response = generate(
            client, "first line\nsay hi to all", temperature=0.2, top_p=0.5, max_tokens=6, stop=["all"]
        )
        assert response.status_code == 200
        body = response.json()
        expected = answer_for("first line\nsay hi to all", "replica-pro", 6, ["all"])
        assert "".join(body["tokens"]) == expected
        assert (body["first_token_ms"], body["token_ms"]) == (
            replica.config.first_token_ms,
            replica.config.token_ms,
        )
        (run,) = replica.runs()
        assert run == {
            "run_id": body["run_id"],
            "session": SESSION,
            "prompt": "first line\nsay hi to all",
            "model": "replica-pro",
            "temperature": 0.2,
            "top_p": 0.5,
            "max_tokens": 6,
            "stop": ["all"],
            "status": "running",
            "text": "",
            "answer": expected,
        }
        finished = client.post(
            f"/api/runs/{body['run_id']}/finished", json={"status": "stopped", "text": "Rep"}
        )
        assert finished.status_code == 200
        # The first report wins: a late beacon does not overwrite it.
        client.post(f"/api/runs/{body['run_id']}/finished", json={"status": "completed", "text": expected})
    (run,) = replica.runs()
    assert (run["status"], run["text"]) == ("stopped", "Rep")


def test_generate_rejects_what_the_page_would_never_send(replica: ThreadedReplica) -> None:
    with as_session(replica) as client:
        assert generate(client, "   ").status_code == 400
        bad_model = client.post("/api/GenerateContent", json={"prompt": "x", "model": "gpt-4"})
        assert bad_model.status_code == 400
        assert bad_model.json()["error"]["status"] == "INVALID_ARGUMENT"
        assert generate(client, stop="STOP").status_code == 400
        # The models/ prefix is accepted and recorded bare.
        assert client.post(
            "/api/GenerateContent", json={"prompt": "x", "model": "models/replica-flash"}
        ).is_success
    assert [run["model"] for run in replica.runs()] == ["replica-flash"]
    assert httpx.post(replica.url + "/api/GenerateContent", json={"prompt": "x"}).status_code == 401


def test_quota_after_n_runs_per_session_until_reset(start_replica: StartReplica) -> None:
    replica = start_replica(quota_after=2, sessions=frozenset({"one", "two"}))
    with as_session(replica, "one") as one, as_session(replica, "two") as two:
        assert generate(one).status_code == 200
        assert generate(one).status_code == 200
        refused = generate(one)
        assert refused.status_code == 429
        assert "RESOURCE_EXHAUSTED" in refused.text
        assert generate(two).status_code == 200  # the quota is per session
        assert [run["status"] for run in replica.runs()] == ["running", "running", "quota", "running"]
        assert replica.runs()[2]["answer"] == ""
        assert replica.http.post("/__replica/reset").status_code == 200
        assert replica.runs() == []
        assert generate(one).status_code == 200


async def test_replica_server_serves_in_the_callers_loop_and_stops() -> None:
    async with ReplicaServer(ReplicaConfig(sessions=frozenset({"s"}))) as server:
        assert server.port > 0
        async with httpx.AsyncClient(cookies={SESSION_COOKIE: "s"}) as client:
            assert (await client.get(server.chat_url)).status_code == 200
        url = server.url
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/__replica/runs", timeout=2.0)


def test_command_line_serves_the_replica(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "child.replica", "--port", str(port), "--session", "cli-a", "cli-b"]
    with (tmp_path / "out.log").open("wb") as output:
        process = subprocess.Popen(
            [*argv, "--quota-after", "1"],
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def answers() -> bool:
            assert process.poll() is None, (tmp_path / "out.log").read_text()
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"http://127.0.0.1:{port}/__replica/runs", timeout=1.0).is_success
            return False

        wait_for(answers, 15, "the replica to listen")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", cookies={SESSION_COOKIE: "cli-b"}) as client:
            assert generate(client).status_code == 200
            assert generate(client).status_code == 429
    finally:
        stop_process_group(process, timeout=5)


async def test_serve_runs_until_cancelled() -> None:
    port = free_port()
    task = asyncio.create_task(serve(ReplicaConfig(), port=port))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        async with asyncio.timeout(10):
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/__replica/runs")).is_success:
                        break
                await asyncio.sleep(0.02)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with pytest.raises(httpx.ConnectError):
            await client.get("/__replica/runs")
