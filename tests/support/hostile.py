"""Hostile clients, run together in a process of their own, against a coordinator.

`python -m tests.support.hostile --port P --seconds S` runs, side by side for S seconds:
slow heads, idle connections beyond the connection cap, a streaming client that never
reads, 50 MB bodies without a key, and pipelined floods; then prints a JSON tally of what
each met. A process of its own, so that its work does not slow a well-behaved client
measured in the test's process (they would share one interpreter lock).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable

MB = 1024 * 1024
Attack = Callable[[int, threading.Event, Counter[str]], None]


def _connect(port: int, timeout: float = 5.0) -> socket.socket | None:
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return None


def _answer_status(sock: socket.socket) -> str:
    """The status code of what the server sent, or 'closed' / 'reset'."""
    try:
        data = sock.recv(64)
    except OSError:
        return "reset"
    if not data:
        return "closed"
    parts = data.split(b" ", 2)
    return parts[1].decode() if len(parts) > 1 else "garbage"


def slow_heads(port: int, stop: threading.Event, tally: Counter[str], connections: int = 50) -> None:
    """Heads sent a byte at a time, never finished: each should be cut by --header-timeout."""
    open_: list[socket.socket] = []
    while not stop.is_set():
        while len(open_) < connections and (sock := _connect(port)) is not None:
            with contextlib.suppress(OSError):
                sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            open_.append(sock)
        readable, _, _ = select.select(open_, [], [], 0.25)
        for sock in readable:
            tally[f"slow_head_{_answer_status(sock)}"] += 1
            open_.remove(sock)
            sock.close()
        for sock in open_:
            with contextlib.suppress(OSError):
                sock.send(b"a")
    for sock in open_:
        sock.close()


def idle_connections(port: int, stop: threading.Event, tally: Counter[str], connections: int = 350) -> None:
    """Connections that send nothing, more of them than the cap: the server must shed them.

    Closed ones are opened again, a hundred a second at most: enough to keep the server
    at its cap, without a reconnect race that would measure only how fast two processes
    can open sockets."""
    open_: list[socket.socket] = []
    while not stop.is_set():
        for _ in range(min(10, connections - len(open_))):
            if (sock := _connect(port)) is not None:
                open_.append(sock)
        readable, _, _ = select.select(open_, [], [], 0)
        for sock in readable:
            status = _answer_status(sock)
            tally["idle_refused_503" if status == "503" else "idle_closed"] += 1
            open_.remove(sock)
            sock.close()
        stop.wait(0.1)
    for sock in open_:
        sock.close()


def never_reader(
    port: int, stop: threading.Event, tally: Counter[str], key: str = "", hold: float = 4.0
) -> None:
    """A stream asked for and never read: --send-timeout must cut it and free its child."""
    words = " ".join(f"w{n}" for n in range(50_000))
    body = json.dumps({"model": "mock", "stream": True, "messages": [{"role": "user", "content": words}]})
    request = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode()
    while not stop.is_set():
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(request)
            tally["never_read_sent"] += 1
            stop.wait(hold)
        except OSError:
            tally["never_read_failed"] += 1
        finally:
            sock.close()


def big_bodies(port: int, stop: threading.Event, tally: Counter[str]) -> None:
    """50 MB bodies without a key, twenty a second: refused at the head, never buffered."""
    piece = b"x" * MB
    while not stop.wait(0.05):
        sock = _connect(port)
        if sock is None:
            continue
        with sock:
            try:
                sock.sendall(
                    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (50 * MB)
                )
                for _ in range(50):
                    if select.select([sock], [], [], 0)[0]:
                        break
                    sock.sendall(piece)
            except OSError:
                tally["big_body_reset"] += 1
                continue
            tally[f"big_body_{_answer_status(sock)}"] += 1


def pipelined_flood(port: int, stop: threading.Event, tally: Counter[str]) -> None:
    """Thousands of requests in one write, ten times a second: a few are answered, then the
    connection closes."""
    flood = b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n" * 5000
    while not stop.wait(0.1):
        sock = _connect(port)
        if sock is None:
            continue
        with sock:
            answers = 0
            try:
                sock.sendall(flood)
                while data := sock.recv(65536):
                    answers += data.count(b"HTTP/1.1 200 ")
            except OSError:
                pass
            tally["flood_connections"] += 1
            tally["flood_answers"] += answers


def run(port: int, seconds: float, key: str) -> Counter[str]:
    """Every attack at once for `seconds`; `key` lets the never-reading client reach a child."""
    attacks: dict[str, Attack] = {
        "slow_heads": slow_heads,
        "idle_connections": idle_connections,
        "never_reader": functools.partial(never_reader, key=key),
        "big_bodies": big_bodies,
        "pipelined_flood": pipelined_flood,
    }
    stop = threading.Event()
    tally: Counter[str] = Counter()
    threads = [
        threading.Thread(target=attack, args=(port, stop, tally), name=name, daemon=True)
        for name, attack in attacks.items()
    ]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(10)
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--key", default="", help="The key the never-reading client sends.")
    args = parser.parse_args()
    print(json.dumps(run(args.port, args.seconds, args.key)))


if __name__ == "__main__":
    main()
