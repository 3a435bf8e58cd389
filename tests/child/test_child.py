"""The child end to end: a real `python -m child --engine mock` process, real sockets, real clients."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import openai
import psutil
import pytest
from openai.types.chat import ChatCompletionUserMessageParam

if TYPE_CHECKING:
    # Types only: a runtime import would depend on how pytest names this test package.
    from tests.support.child import ChildProcess, SpawnChild

T = TypeVar("T")

USER: ChatCompletionUserMessageParam = {"role": "user", "content": "hello there world"}
PROTECTED = [
    ("GET", "/v1/models"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/cancel/some-id"),
    ("GET", "/no/such/route"),
    ("POST", "/health"),
]


def in_thread(fn: Callable[[], T]) -> Future[T]:
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(fn)
    pool.shutdown(wait=False)
    return future


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["message"]
    return error


def sse_payloads(lines: list[str]) -> list[str]:
    return [line[len("data: ") :] for line in lines if line.startswith("data: ")]


# --- shape -----------------------------------------------------------------------------------


def test_health_shape(child: ChildProcess) -> None:
    response = child.health()
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["profile"] == "alpha"
    assert body["engine"] == "mock"
    assert body["pid"] == child.proc.pid
    assert body["browser_pid"] is None
    assert body["browser_connected"] is None
    assert body["models"] == ["mock"]
    assert body["request_id"] is None
    assert isinstance(body["served"], int)
    assert body["api_port"] == child.port
    assert isinstance(body["stream_port"], int) and isinstance(body["browser_port"], int)


@pytest.mark.parametrize("token", [None, "wrong-token"])
@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_token_required(child: ChildProcess, token: str | None, method: str, path: str) -> None:
    response = child.http(token=token).request(method, path, json={"messages": [USER]})
    assert_error(response, 403, "invalid_child_token")


def test_models(child: ChildProcess) -> None:
    models = child.openai().models.list()
    assert [model.id for model in models.data] == ["mock"]
    raw = child.http().get("/v1/models").json()
    assert raw["object"] == "list"
    assert raw["data"][0]["object"] == "model"
    assert raw["data"][0]["owned_by"] == "coordinator"
    assert isinstance(raw["data"][0]["created"], int)


def test_not_found_and_method_not_allowed(child: ChildProcess) -> None:
    client = child.http()
    assert_error(client.get("/no/such/route"), 404, "not_found")
    assert_error(client.get("/v1/chat/completions"), 405, "method_not_allowed")
    assert client.get("/v1/chat/completions").headers["allow"] == "POST"
    refused = client.post("/health")
    assert_error(refused, 405, "method_not_allowed")
    assert refused.headers["allow"] == "GET, HEAD"
    # The token is checked before the route: without it, nothing says which routes exist.
    assert_error(child.http(token=None).get("/no/such/route"), 403, "invalid_child_token")
    head = client.head("/health")
    assert head.status_code == 200 and head.content == b""


# --- answers ---------------------------------------------------------------------------------


def test_non_stream_answer(child: ChildProcess) -> None:
    completion = child.openai().chat.completions.create(
        model="mock",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": [{"type": "text", "text": "second  question here"}]},
        ],
    )
    assert completion.object == "chat.completion"
    assert completion.model == "mock"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: second  question here"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 2 + 2 + 2 + 3
    assert completion.usage.completion_tokens == 4  # "echo:", " second", "  question", " here"
    assert completion.usage.total_tokens == 13


def test_model_is_optional_and_no_user_message_echoes_nothing(child: ChildProcess) -> None:
    body = {"messages": [{"role": "system", "content": "x"}]}
    response = child.http().post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "echo: "


def test_stream_deltas_join_to_the_answer(child: ChildProcess) -> None:
    stream = child.openai().chat.completions.create(
        model="mock",
        messages=[USER],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert content_chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.content for c in content_chunks] == ["echo:", " hello", " there", " world"]
    assert "".join(c.choices[0].delta.content or "" for c in content_chunks) == "echo: hello there world"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    assert len(finals) == 1
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4
    assert chunks[-1].usage.prompt_tokens == 3


def test_stream_wire_format(child: ChildProcess) -> None:
    body = {"model": "mock", "messages": [USER], "stream": True}
    with child.http().stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        payloads = sse_payloads(list(response.iter_lines()))
    assert payloads[-1] == "[DONE]"
    events = [json.loads(p) for p in payloads[:-1]]
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": "echo:"}
    assert events[1]["choices"][0]["delta"] == {"content": " hello"}
    assert events[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}
    assert not any("usage" in e for e in events)  # no include_usage, no usage chunk


def test_back_to_back_requests_never_find_the_child_busy(child: ChildProcess) -> None:
    # The slot is given back before the last byte goes out, so a client (the coordinator)
    # that sends its next request the moment it reads [DONE] finds the child free.
    client = child.http()
    for index in range(60):
        body = {"messages": [USER], "stream": index % 3 != 0}
        response = client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text


def test_request_id_header_is_the_id(child: ChildProcess) -> None:
    client = child.http()
    response = client.post(
        "/v1/chat/completions", json={"messages": [USER]}, headers={"X-Request-ID": "req-42"}
    )
    assert response.headers["x-request-id"] == "req-42"
    assert response.json()["id"] == "chatcmpl-req-42"
    body = {"messages": [USER], "stream": True}
    headers = {"X-Request-ID": "req-43"}
    with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as streamed:
        assert streamed.headers["x-request-id"] == "req-43"
        events = [json.loads(p) for p in sse_payloads(list(streamed.iter_lines()))[:-1]]
    assert {e["id"] for e in events} == {"chatcmpl-req-43"}
    generated = client.post("/v1/chat/completions", json={"messages": [USER]})
    request_id = generated.headers["x-request-id"]
    assert request_id and generated.json()["id"] == f"chatcmpl-{request_id}"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b"{}", "messages"),
        (b'{"messages": []}', "messages"),
        (b'{"messages": [{"role": "wizard", "content": "x"}]}', "messages[0].role"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream"),
        (b'{"messages": [{"role": "user", "content": "x"}], "model": 5}', "model"),
        # Once accepted, then failed after the child had taken its turn: busy for ever.
        (b'{"messages": [{"role": "user", "content": [{"type": "text", "text": null}]}]}',
         "messages[0].content[0].text"),
        (b'{"messages": [{"role": "user", "content": "\\ud800"}]}', "messages[0].content"),
        (b'{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}',
         "messages[0].content[0].image_url.url"),
    ],
)  # fmt: skip
def test_invalid_bodies_are_400(child: ChildProcess, body: bytes, param: str | None) -> None:
    response = child.http().post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["type"] == "invalid_request_error"
    health = child.health().json()
    assert (health["status"], health["request_id"]) == ("ready", None)


def test_unknown_model_is_404(child: ChildProcess) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        child.openai().chat.completions.create(model="gpt-9", messages=[USER])
    assert caught.value.code == "model_not_found"
    assert "mock" in caught.value.message
    raw = child.http().post(
        "/v1/chat/completions", json={"model": "gpt-9", "messages": [USER]}, headers={"X-Request-ID": "m-1"}
    )
    assert_error(raw, 404, "model_not_found")
    assert raw.headers["x-request-id"] == "m-1"


# --- timing, one at a time, cancel, disconnect -----------------------------------------------


# `alone`: its assertion is a latency, which holds on a quiet machine (scripts/test.sh).
@pytest.mark.alone
def test_first_chunk_arrives_before_the_answer_is_done(spawn_child: SpawnChild) -> None:
    child = spawn_child(env={"MOCK_TOKEN_MS": "200"})
    started = time.monotonic()
    arrivals: list[float] = []
    stream = child.openai().chat.completions.create(
        model="mock", messages=[{"role": "user", "content": "one two three four"}], stream=True
    )
    for _ in stream:
        arrivals.append(time.monotonic() - started)
    # 5 tokens, 200 ms apart: the last one is produced ~0.8 s after the first.
    assert arrivals[-1] - arrivals[0] > 0.6
    assert arrivals[0] < 0.5


# `alone`: its assertion is a latency, which holds on a quiet machine (scripts/test.sh).
@pytest.mark.alone
def test_second_request_is_refused_at_once(spawn_child: SpawnChild) -> None:
    child = spawn_child(env={"MOCK_FIRST_TOKEN_MS": "5000"})
    client = child.http()
    first = in_thread(
        lambda: client.post(
            "/v1/chat/completions", json={"messages": [USER]}, headers={"X-Request-ID": "slow"}
        )
    )
    child.wait_status("busy")
    started = time.monotonic()
    second = child.http().post("/v1/chat/completions", json={"messages": [USER]})
    assert time.monotonic() - started < 1.0
    assert_error(second, 429, "child_busy")
    assert child.health().json()["request_id"] == "slow"
    assert child.http().post("/v1/cancel/slow").status_code == 200
    assert_error(first.result(timeout=5), 499, "request_cancelled")


def test_cancel_running_stream(spawn_child: SpawnChild) -> None:
    # 1 s a token: the cancel lands within the first few, on a loaded machine too.
    child = spawn_child(env={"MOCK_TOKEN_MS": "1000"})
    stream = child.openai().chat.completions.create(
        model="mock",
        messages=[{"role": "user", "content": " ".join(["word"] * 30)}],
        stream=True,
        extra_headers={"X-Request-ID": "stream-1"},
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)
            if len(received) == 1:
                cancelled = child.http().post("/v1/cancel/stream-1")
                assert cancelled.status_code == 200
                assert cancelled.json() == {"id": "stream-1", "cancelled": True}
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "request_cancelled"
    assert len(received) < 5
    body = child.wait_status("ready", timeout=3)
    assert body["request_id"] is None
    assert_error(child.http().post("/v1/cancel/stream-1"), 404, "request_not_found")


def test_cancelled_stream_ends_with_an_error_event_and_no_done(spawn_child: SpawnChild) -> None:
    child = spawn_child(env={"MOCK_TOKEN_MS": "200"})
    body = {"messages": [{"role": "user", "content": " ".join(["word"] * 30)}], "stream": True}
    with child.http().stream(
        "POST", "/v1/chat/completions", json=body, headers={"X-Request-ID": "raw-1"}
    ) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
        assert child.http().post("/v1/cancel/raw-1").status_code == 200
        payloads = sse_payloads(list(lines))
    assert "[DONE]" not in payloads
    assert json.loads(payloads[-1])["error"]["code"] == "request_cancelled"
    child.wait_status("ready", timeout=3)


# `alone`: its assertion is a latency, which holds on a quiet machine (scripts/test.sh).
@pytest.mark.alone
def test_cancel_running_non_stream(spawn_child: SpawnChild) -> None:
    child = spawn_child(env={"MOCK_FIRST_TOKEN_MS": "10000"})
    client = child.openai()
    pending = in_thread(
        lambda: client.chat.completions.create(
            model="mock", messages=[USER], extra_headers={"X-Request-ID": "plain-1"}
        )
    )
    child.wait_for(lambda: (child.try_health() or {}).get("request_id") == "plain-1", 30, "the request")
    started = time.monotonic()
    assert child.http().post("/v1/cancel/plain-1").json() == {"id": "plain-1", "cancelled": True}
    with pytest.raises(openai.APIStatusError) as caught:
        pending.result(timeout=5)
    assert time.monotonic() - started < 2
    assert caught.value.status_code == 499
    assert caught.value.code == "request_cancelled"
    child.wait_status("ready", timeout=3)


def test_cancel_unknown_request_is_404(child: ChildProcess) -> None:
    assert_error(child.http().post("/v1/cancel/nobody"), 404, "request_not_found")


def test_disconnect_mid_stream_frees_the_child(spawn_child: SpawnChild) -> None:
    child = spawn_child(env={"MOCK_TOKEN_MS": "300"})
    body = {"messages": [{"role": "user", "content": " ".join(["word"] * 50)}], "stream": True}
    with child.http().stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        lines = response.iter_lines()  # keep it: a dropped iterator closes the response
        assert next(lines).startswith("data: ")
        assert child.health().json()["status"] == "busy"
    # Leaving the block closed the connection in the middle of a 15-second answer.
    child.wait_status("ready", timeout=3)
    assert "request_cancelled" in child.stdout_path.read_text()


def test_disconnect_while_waiting_frees_the_child(spawn_child: SpawnChild) -> None:
    child = spawn_child(env={"MOCK_FIRST_TOKEN_MS": "20000"})
    for stream in (False, True):
        client = child.http(timeout=0.3)
        with pytest.raises(httpx.ReadTimeout):
            client.post("/v1/chat/completions", json={"messages": [USER], "stream": stream})
        client.close()
        child.wait_status("ready", timeout=3)


def test_served_counts_completed_requests(spawn_child: SpawnChild) -> None:
    child = spawn_child()
    client = child.openai()
    client.chat.completions.create(model="mock", messages=[USER])
    list(client.chat.completions.create(model="mock", messages=[USER], stream=True))
    assert child.health().json()["served"] == 2


# --- faults, configuration, lifecycle --------------------------------------------------------


def test_startup_delay_reports_starting(spawn_child: SpawnChild) -> None:
    # Long enough to be seen starting on a loaded machine; the test then waits for ready.
    child = spawn_child(env={"MOCK_STARTUP_MS": "6000"}, wait_ready=False)
    body = child.wait_for(child.try_health, 30, "the child to listen")
    assert body["status"] == "starting"
    assert child.health().status_code == 503
    refused = child.http().post("/v1/chat/completions", json={"messages": [USER]})
    assert_error(refused, 503, "starting")
    child.wait_status("ready", timeout=30)


def test_fail_start_exits_1(spawn_child: SpawnChild) -> None:
    child = spawn_child(env={"MOCK_FAIL_START": "other, alpha"}, wait_ready=False)
    assert child.wait_exit(timeout=10) == 1
    assert '"ready"' not in child.stdout_path.read_text()
    assert "child_start_failed" in child.stdout_path.read_text()


def test_fail_start_spares_other_profiles(spawn_child: SpawnChild) -> None:
    child = spawn_child(env={"MOCK_FAIL_START": "other", "MOCK_FAIL_REQUESTS": "other"})
    assert child.http().post("/v1/chat/completions", json={"messages": [USER]}).status_code == 200


def test_fail_requests_is_500(spawn_child: SpawnChild) -> None:
    child = spawn_child(env={"MOCK_FAIL_REQUESTS": "alpha"})
    client = child.http()
    for stream in (False, True):
        response = client.post("/v1/chat/completions", json={"messages": [USER], "stream": stream})
        error = assert_error(response, 500, "engine_error")
        assert error["type"] == "server_error"
    assert child.health().json()["status"] == "ready"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token": None}, "CHILD_TOKEN"),
        ({"token": None, "env": {"CHILD_TOKEN": ""}}, "CHILD_TOKEN"),
        ({"engine": "camoufox"}, "run `camoufox fetch`"),
        (
            {"engine": "chromium", "extra_args": ["--browser-path", "/nowhere/chrome"]},
            "no browser at /nowhere",
        ),
        (
            {"engine": "chromium", "extra_args": ["--site-config", "/nowhere.toml"]},
            "--site-config /nowhere.toml",
        ),
        ({"profile_text": None}, "cannot read profile"),
        ({"profile_text": '{"cookies": [{"value": "SECRET-COOKIE"'}, "is not valid JSON"),
        ({"extra_args": ["--api-port", "0"]}, "bad command line"),
        ({"env": {"MOCK_USAGE": "ten,five"}}, "MOCK_USAGE must be prompt,completion"),
        ({"env": {"MOCK_TOOL_ARGUMENTS": "[1]"}}, "MOCK_TOOL_ARGUMENTS must be"),
        ({"env": {"MOCK_FINISH_REASON": "done"}}, "MOCK_FINISH_REASON must be one of"),
    ],
)
def test_configuration_errors_exit_78(spawn_child: SpawnChild, kwargs: dict[str, Any], message: str) -> None:
    child = spawn_child(wait_ready=False, **kwargs)
    assert child.wait_exit(timeout=10) == 78
    stderr = child.stderr_path.read_text()
    assert message in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert "SECRET-COOKIE" not in child.output()
    if "profile" in message or "JSON" in message:
        assert "alpha.json" in stderr


def test_logs_hold_no_prompt_answer_or_token(spawn_child: SpawnChild) -> None:
    child = spawn_child()
    client = child.openai()
    client.chat.completions.create(model="mock", messages=[{"role": "user", "content": "zebra-secret"}])
    streamed = client.chat.completions.create(
        model="mock", messages=[{"role": "user", "content": "yak-secret"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "echo: yak-secret"
    child.kill()
    output = child.output()
    assert "request_finished" in output
    for secret in ("zebra-secret", "yak-secret", child.token):
        assert secret not in output
    for line in child.stdout_path.read_text().splitlines():
        json.loads(line)  # every stdout line is a JSON event


# `alone`: its assertion is a latency, which holds on a quiet machine (scripts/test.sh).
@pytest.mark.alone
def test_sigterm_stops_the_child_promptly_even_while_busy(spawn_child: SpawnChild) -> None:
    child = spawn_child(env={"MOCK_FIRST_TOKEN_MS": "30000"})
    client = child.http(timeout=10)
    pending = in_thread(lambda: client.post("/v1/chat/completions", json={"messages": [USER]}))
    child.wait_status("busy")
    started = time.monotonic()
    child.proc.send_signal(signal.SIGTERM)
    assert child.wait_exit(timeout=5) == 0
    assert time.monotonic() - started < 4  # the 2 s grace for the request in flight, then out
    with pytest.raises(httpx.HTTPError):
        pending.result(timeout=5).raise_for_status()
    events = [json.loads(line) for line in child.output().splitlines() if line.startswith("{")]
    assert {"event": "request_cancelled", "reason": "shutdown"}.items() <= next(
        e for e in events if e["event"] == "request_cancelled"
    ).items()
    assert any(e["event"] == "child_stopped" for e in events)


def test_sigint_stops_the_child_without_a_traceback(spawn_child: SpawnChild) -> None:
    child = spawn_child()
    child.proc.send_signal(signal.SIGINT)
    assert child.wait_exit(timeout=3) == 0
    assert "Traceback" not in child.stderr_path.read_text()
    assert "child_stopped" in child.stdout_path.read_text()


def test_listens_on_loopback_only(child: ChildProcess) -> None:
    listening = [
        conn.laddr
        for conn in psutil.Process(child.proc.pid).net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN
    ]
    assert [(addr.ip, addr.port) for addr in listening] == [("127.0.0.1", child.port)]
