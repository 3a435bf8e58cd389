"""The public port against clients that hold, flood or starve it (issue 10, items 4, 5, 9).

Each test asserts its figure on a real socket against the real coordinator: a body never
buffered, a connection cap that still lets a new client in, heads and bodies that must
arrive in time, reading that pauses behind a pipelined request, and a stream its client
never reads that frees its child.
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.support.coordinator import Coordinator, Runs
from tests.support.processes import wait_for
from tests.support.raw import assert_openai_error, connect, post, read_answer, read_until_closed

KEY = "hostile-suite-key"
ASK = json.dumps({"model": "mock", "messages": [{"role": "user", "content": "fine"}]}).encode()
MB = 1024 * 1024


def rss(run: Coordinator) -> int:
    return int(psutil.Process(run.process.pid).memory_info().rss)


def stream_body(words: int) -> bytes:
    text = " ".join(f"w{n}" for n in range(words))
    return json.dumps(
        {"model": "mock", "stream": True, "messages": [{"role": "user", "content": text}]}
    ).encode()


@pytest.fixture(scope="module")
def run(module_runs: Runs) -> Coordinator:
    """Short limits, so that each is reached in a test's time; a key, so that requests can be refused."""
    return module_runs.start(
        ("h1", "h2"),
        args=[
            "--api-key-file", str(_key_file(module_runs)),
            "--header-timeout", "1",
            "--body-timeout", "1",
            "--send-timeout", "1",
            "--max-headers", "50",
        ],
        api_key=KEY,
    )  # fmt: skip


def _key_file(runs: Runs) -> Path:
    path = runs.tmp_path_factory.mktemp("key") / "key"
    path.write_text(KEY + "\n")
    return path


@pytest.fixture(scope="module")
def slow(module_runs: Runs) -> Coordinator:
    """One child that takes seconds before each answer: long enough that a test sees a request
    still running after a few steps, on a loaded machine too."""
    return module_runs.start(("s1",), env={"MOCK_FIRST_TOKEN_MS": "6000"})


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


# -- 4: the body is not read before the request is authorised ----------------------------


def test_large_bodies_without_a_key_are_refused_unread(run: Coordinator) -> None:
    """Ten 50 MB uploads without a key: each gets its 401 at once; the coordinator reads none of it."""
    before = rss(run)
    answers: list[bytes] = []
    peak = [before]

    def upload() -> None:
        with connect(run) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (50 * MB)
            )
            sent = 0
            piece = b"x" * MB
            sock.settimeout(5)
            try:
                while sent < 50 * MB:
                    sock.sendall(piece)
                    sent += len(piece)
                    peak[0] = max(peak[0], rss(run))
            except OSError:
                pass  # cut off after the answer: expected
            answers.append(read_until_closed(sock) if sent < 50 * MB else sock.recv(65536))

    threads = [threading.Thread(target=upload) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers) == 10
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    assert peak[0] - before < 30 * MB, f"grew by {(peak[0] - before) / MB:.0f} MB"


def test_expect_continue_is_not_granted_without_a_key(run: Coordinator) -> None:
    with connect(run) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 401 ")
    assert b"100 Continue" not in data


def test_a_pipelined_expect_gets_its_100_continue_after_the_answer_before_it(run: Coordinator) -> None:
    """The go-ahead for a pipelined request must not land inside the stream being answered."""
    auth = f"Authorization: Bearer {KEY}\r\n"
    second_head, _, second_body = post(ASK, auth + "Expect: 100-continue\r\n").partition(b"\r\n\r\n")
    with connect(run) as sock:
        sock.sendall(post(stream_body(30), auth) + second_head + b"\r\n\r\n")
        data = b""
        while b"0\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk
            data += chunk
        first, _, after = data.partition(b"0\r\n\r\n")
        assert b"100 Continue" not in first
        while b"\r\n\r\n" not in after:
            after += sock.recv(65536)
        assert after.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(second_body)
        status, _, body, _ = read_answer(sock, after[len(b"HTTP/1.1 100 Continue\r\n\r\n") :])
    assert first.endswith(b"data: [DONE]\n\n\r\n")
    assert status.startswith(b"HTTP/1.1 200 ")
    assert json.loads(body)["choices"][0]["message"]["content"] == "echo: fine"


def test_a_refused_small_body_keeps_the_connection(run: Coordinator) -> None:
    with connect(run) as sock:
        sock.sendall(post(ASK) + b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body, rest = read_answer(sock)
        second, _, _, _ = read_answer(sock, rest)
    assert status.startswith(b"HTTP/1.1 401 ")
    assert_openai_error(body, "invalid_api_key")
    assert second.startswith(b"HTTP/1.1 200 ")


# -- 5: limits in number and time --------------------------------------------------------


def test_headers_are_limited_in_number_and_in_bytes_on_the_wire(run: Coordinator) -> None:
    with connect(run) as sock:
        sock.sendall(b"GET /live HTTP/1.1\r\nHost: x\r\n" + b"X:\r\n" * 65_000 + b"\r\n")
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 431 ")
    assert_openai_error(data.partition(b"\r\n\r\n")[2], "too_many_headers")
    # One endless header line: refused while it arrives, long before it ends.
    with connect(run) as sock:
        sock.sendall(b"GET /live HTTP/1.1\r\nHost: x\r\nX-Long: ")
        sent = 0
        with contextlib.suppress(OSError):
            while sent < 64 * MB and not select.select([sock], [], [], 0)[0]:
                sock.sendall(b"a" * 65536)
                sent += 65536
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 431 ")
    assert sent < 8 * MB, f"{sent / MB:.0f} MB sent before the answer"


def test_a_slow_head_and_a_slow_body_time_out(run: Coordinator) -> None:
    started = time.monotonic()
    with connect(run) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n")
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert_openai_error(data.partition(b"\r\n\r\n")[2], "request_timeout")
    with connect(run) as sock:
        sock.sendall(post(ASK, f"Authorization: Bearer {KEY}\r\n")[:-10])
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert b"body" in data
    assert time.monotonic() - started < 8


def test_reading_pauses_while_a_pipelined_request_waits(slow: Coordinator) -> None:
    """Behind a request in hand, the coordinator reads one read's worth and no more."""
    with connect(slow) as sock:
        sock.sendall(post(ASK))
        sock.settimeout(2)
        flood = b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n" * 20_000  # 0.6 MB a round
        sent = 0
        with contextlib.suppress(OSError):  # a timeout: nothing more is read
            while sent < 200 * MB:
                sent += sock.send(flood)
        # Kernel buffers take a few MB; a server that kept reading would have taken it all.
        assert sent < 40 * MB, f"{sent / MB:.0f} MB were taken"
        sock.settimeout(30)  # the answer comes when the slow child's first token does
        status, _, body, _ = read_answer(sock)
    assert status.startswith(b"HTTP/1.1 200 ")
    assert json.loads(body)["choices"][0]["message"]["content"] == "echo: fine"


def test_a_pipelined_flood_is_cut_after_the_first_requests(run: Coordinator) -> None:
    with connect(run) as sock:
        sock.sendall(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n" * 5000)
        data = read_until_closed(sock)
    answers = data.count(b"HTTP/1.1 200 ")
    assert 1 <= answers <= 17
    assert data.endswith(b'{"status":"live"}')


def test_a_stream_never_read_is_cancelled_and_frees_its_child(run: Coordinator) -> None:
    with connect(run) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(
            post(stream_body(150_000), f"Authorization: Bearer {KEY}\r\nX-Request-ID: never-read\r\n")
        )
        wait_for(lambda: any(c["request_id"] == "never-read" for c in run.children().values()), 30, "busy")
        wait_for(
            lambda: all(c["state"] == "ready" for c in run.children().values()), 30, "the child to be freed"
        )
    # The log lines may follow the freed child by a moment on a loaded machine.
    timed_out = wait_for(lambda: run.events("send_timeout"), 30, "the send timeout's log line")
    assert timed_out[-1]["seconds"] == 1
    line = wait_for(
        lambda: [e for e in run.events("request") if e["request_id"] == "never-read"], 30, "its request line"
    )
    assert line[0]["cancelled_by"] == "send_timeout" and line[0]["status"] == 499


# -- 9: a request accepted is answered ---------------------------------------------------


def test_a_half_closed_connection_gets_its_answer(slow: Coordinator) -> None:
    with connect(slow) as sock:
        sock.sendall(post(ASK))
        sock.shutdown(socket.SHUT_WR)
        data = read_until_closed(sock)
    # The wait may be punctuated by interim 102s, which HTTP/1.1 clients skip.
    final = re.sub(rb"^(HTTP/1.1 102 Processing\r\n\r\n)*", b"", data)
    assert final.startswith(b"HTTP/1.1 200 ")
    assert b"echo: fine" in final


def test_a_client_gone_while_its_request_waits_gives_its_place_back(slow: Coordinator) -> None:
    """The flip side of answering a half-closed connection: one that is closed is still noticed."""
    with connect(slow) as first:
        first.sendall(post(ASK))
        wait_for(lambda: slow.child("s1")["state"] == "busy", 30, "the child to take the first request")
        with connect(slow) as gone:
            gone.sendall(post(ASK, "X-Request-ID: gone-away\r\n"))
            wait_for(lambda: slow.get("/ready").json()["queue"]["waiting"] == 1, 30, "the second to queue")
        # Closed while queued: the queue gives its place back well before the child is free.
        wait_for(lambda: slow.get("/ready").json()["queue"]["waiting"] == 0, 30, "the queue to empty")
        assert slow.child("s1")["state"] == "busy"  # emptied by the close, not by the first's end
        status, _, _, _ = read_answer(first)
    assert status.startswith(b"HTTP/1.1 200 ")
    line = wait_for(
        lambda: [e for e in slow.events("request") if e["request_id"] == "gone-away"], 30, "its log line"
    )
    assert line[0]["status"] == 499


def test_a_request_pipelined_after_connection_close_does_not_cancel_the_first(run: Coordinator) -> None:
    auth = f"Authorization: Bearer {KEY}\r\n"
    with connect(run) as sock:
        sock.sendall(post(ASK, auth + "Connection: close\r\n") + post(ASK, auth))
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert data.count(b"HTTP/1.1 ") == 1
    assert b"echo: fine" in data


# -- the connection cap ------------------------------------------------------------------


def test_the_connection_cap_closes_idle_connections_first_then_answers_503(
    module_runs: Runs, sockets: list[socket.socket]
) -> None:
    capped = module_runs.start(("c1",), args=["--max-connections", "20", "--header-timeout", "30"])
    for _ in range(20):
        sockets.append(connect(capped))
    # Twenty idle connections: a new client still gets in, at the longest idle one's expense.
    assert capped.get("/live").status_code == 200
    sockets.append(connect(capped))  # at the cap again
    for sock in sockets:
        with contextlib.suppress(OSError):  # the one closed for the client above
            sock.sendall(b"GET /live HTTP/1.1\r\n")  # each one now has a request under way
    wait_for(lambda: _refused_with_503(capped), 30, "a connection beyond the cap to be answered 503")
    pid = capped.process.pid
    soft, hard = _file_limits(pid)
    assert soft == hard or soft >= 65536


def _refused_with_503(run: Coordinator) -> bool:
    with connect(run) as sock:
        data = read_until_closed(sock)
    if not data:
        return False
    assert data.startswith(b"HTTP/1.1 503 ")
    assert_openai_error(data.partition(b"\r\n\r\n")[2], "too_many_connections")
    return True


def _file_limits(pid: int) -> tuple[int, int]:
    text = Path(f"/proc/{pid}/limits").read_text()
    found = re.search(r"Max open files\s+(\d+)\s+(\d+)", text)
    assert found
    return int(found.group(1)), int(found.group(2))


# -- watching it -------------------------------------------------------------------------


def test_each_limit_met_is_counted_in_the_metrics(run: Coordinator) -> None:
    def counts() -> dict[str, float]:
        text = run.get("/metrics").text
        found = re.findall(r'^coordinator_http_limits_total\{limit="(\w+)"\} (\S+)$', text, re.MULTILINE)
        return {limit: float(value) for limit, value in found}

    before = counts()
    with connect(run) as sock:
        sock.sendall(b"GET /live HTTP/1.1\r\nHost: x\r\n" + b"X:\r\n" * 200 + b"\r\n")
        assert read_until_closed(sock).startswith(b"HTTP/1.1 431 ")
    with connect(run) as sock:
        sock.sendall(b"GET /live HTTP/1.1\r\n")
        assert read_until_closed(sock).startswith(b"HTTP/1.1 408 ")
    after = counts()
    assert after["too_many_headers"] == before.get("too_many_headers", 0) + 1
    assert after["header_timeout"] == before.get("header_timeout", 0) + 1
