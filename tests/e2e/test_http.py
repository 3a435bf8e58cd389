"""The coordinator's own HTTP/1.1 server, byte by byte on a raw socket: what clients other
than the openai SDK send (curl's Expect, HTTP/1.0, pipelining, HEAD) and what they must
never be able to break (malformed requests, oversized heads and bodies)."""

from __future__ import annotations

import json
import time

import pytest

from tests.support.coordinator import Coordinator, Runs
from tests.support.raw import assert_openai_error, connect, post, read_answer, read_until_closed

ASK = json.dumps({"model": "mock", "messages": [{"role": "user", "content": "raw bytes"}]}).encode()
STREAM = json.dumps(
    {"model": "mock", "stream": True, "messages": [{"role": "user", "content": "raw stream"}]}
).encode()
LIMIT = 2000


@pytest.fixture(scope="module")
def run(module_runs: Runs) -> Coordinator:
    return module_runs.start(("h1",), args=["--max-body-bytes", str(LIMIT)])


def test_malformed_request_gets_400_in_openai_shape_and_a_close(run: Coordinator) -> None:
    with connect(run) as sock:
        sock.sendall(b"this is not http\r\n\r\n")
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in data.lower()
    assert_openai_error(data.split(b"\r\n\r\n", 1)[1], "malformed_request")


def test_oversized_head_is_431(run: Coordinator) -> None:
    with connect(run) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 431 ")
    assert_openai_error(data.split(b"\r\n\r\n", 1)[1], "headers_too_large")


def test_declared_body_over_the_limit_is_refused_before_it_is_sent(run: Coordinator) -> None:
    with connect(run) as sock:
        sock.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {LIMIT + 1}\r\n\r\n".encode()
        )
        status, _, body, _ = read_answer(sock)
    assert status.startswith(b"HTTP/1.1 413 ")
    assert_openai_error(body, "request_too_large")


def test_chunked_body_over_the_limit_is_413(run: Coordinator) -> None:
    chunk = b"x" * 1500
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%b\r\n" % (len(chunk), chunk) * 2
        + b"0\r\n\r\n"
    )
    with connect(run) as sock:
        sock.sendall(request)
        status, _, body, _ = read_answer(sock)
    assert status.startswith(b"HTTP/1.1 413 ")
    assert_openai_error(body, "request_too_large")


def test_chunked_body_within_the_limit_is_served(run: Coordinator) -> None:
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%b\r\n" % (len(ASK[:10]), ASK[:10])
        + b"%x\r\n%b\r\n" % (len(ASK[10:]), ASK[10:])
        + b"0\r\n\r\n"
    )
    with connect(run) as sock:
        sock.sendall(request)
        status, _, body, _ = read_answer(sock)
    assert status.startswith(b"HTTP/1.1 200 ")
    assert json.loads(body)["choices"][0]["message"]["content"] == "echo: raw bytes"


def test_expect_100_continue(run: Coordinator) -> None:
    """curl sends `Expect: 100-continue` before a large body and waits for the go-ahead."""
    head, _, body = post(ASK, "Expect: 100-continue\r\n").partition(b"\r\n\r\n")
    with connect(run) as sock:
        sock.sendall(head + b"\r\n\r\n")
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += sock.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        status, _, answer, _ = read_answer(sock, interim[len(b"HTTP/1.1 100 Continue\r\n\r\n") :])
    assert status.startswith(b"HTTP/1.1 200 ")
    assert json.loads(answer)["choices"][0]["message"]["content"] == "echo: raw bytes"


def test_pipelined_requests_are_answered_in_order(run: Coordinator) -> None:
    with connect(run) as sock:
        sock.sendall(
            post(ASK, "X-Request-ID: pipe-1\r\n")
            + b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Request-ID: pipe-2\r\n\r\n"
        )
        first, first_headers, first_body, rest = read_answer(sock)
        second, second_headers, second_body, _ = read_answer(sock, rest)
    assert first.startswith(b"HTTP/1.1 200 ") and first_headers["x-request-id"] == "pipe-1"
    assert json.loads(first_body)["object"] == "chat.completion"
    assert second.startswith(b"HTTP/1.1 200 ") and second_headers["x-request-id"] == "pipe-2"
    assert json.loads(second_body)["object"] == "list"


def test_http_10_stream_is_read_to_the_close(run: Coordinator) -> None:
    with connect(run) as sock:
        sock.sendall(post(STREAM, version="1.0"))
        data = read_until_closed(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding" not in head.lower()
    assert body.startswith(b"data: {")  # events as they are, no chunk sizes in between
    assert body.endswith(b"data: [DONE]\n\n")


def test_head_has_the_headers_and_no_body(run: Coordinator) -> None:
    with connect(run) as sock:
        sock.sendall(b"HEAD /v1/models HTTP/1.1\r\nHost: x\r\n\r\nGET /live HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        deadline = time.monotonic() + 10
        while b'{"status":"live"}' not in data and time.monotonic() < deadline:
            data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"content-length: " in head.lower()
    assert rest.startswith(b"HTTP/1.1 200 ")  # the next answer follows at once: no body in between


def test_an_upgrade_is_answered_as_plain_http_then_closed(run: Coordinator) -> None:
    with connect(run) as sock:
        sock.sendall(
            b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        )
        data = read_until_closed(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"connection: close" in head.lower()
    assert json.loads(body)["data"][0]["id"] == "mock"


def test_the_coordinator_serves_after_all_that(run: Coordinator) -> None:
    completion = run.openai().chat.completions.create(
        model="mock", messages=[{"role": "user", "content": "still fine"}]
    )
    assert completion.choices[0].message.content == "echo: still fine"
