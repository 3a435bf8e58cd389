"""What the coordinator costs: added latency, how busy it keeps children, its memory.

    .venv/bin/python bench/overhead.py [--children 2] [--requests 3000] [--seconds 10]

1. Latency: the same mock children (no delay) called directly and through the
   coordinator, with as many concurrent clients as children; p50/p99 of each and the
   difference, non-stream and stream.
2. Saturation: MOCK_FIRST_TOKEN_MS=200 and four clients per child for a while; the share
   of wall time the children spent serving, from their own request logs.
3. Memory: the coordinator's resident set with 8 children, after a few thousand requests.

The load generator is a minimal HTTP/1.1 client on asyncio streams (keep-alive, one
connection per client), so that its own cost stays small next to what it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil

BODY = json.dumps(
    {"model": "mock", "messages": [{"role": "user", "content": "the quick brown fox"}]}
).encode()
STREAM_BODY = json.dumps(
    {"model": "mock", "stream": True, "messages": [{"role": "user", "content": "the quick brown fox"}]}
).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():  # type: ignore[operator]
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def coordinator(
    children: int, env: dict[str, str], folder: Path
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    profiles = folder / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    for i in range(children):
        (profiles / f"bench-{i}.json").write_text('{"cookies": [], "origins": []}')
    port = free_port()
    base = 40000 + (os.getpid() % 500) * 20
    argv = [
        sys.executable, "-m", "coordinator", "run", "--profiles", str(profiles), "--host", "127.0.0.1",
        "--port", str(port), "--engine", "mock", "--base-api-port", str(base),
        "--base-stream-port", str(base + 5000), "--base-browser-port", str(base + 10000),
        "--log-dir", str(folder / "logs"), "--max-queue", "1000",
    ]  # fmt: skip
    process = subprocess.Popen(
        argv,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/ready").json()["children"]["serving"] == children,
            60,
            "the coordinator's children",
        )
        yield port, process
    finally:
        stop(process)


@contextmanager
def direct_children(children: int, env: dict[str, str], folder: Path) -> Iterator[tuple[list[int], str]]:
    token = secrets.token_urlsafe(16)
    profile = folder / "direct.json"
    profile.write_text('{"cookies": [], "origins": []}')
    ports = [free_port() for _ in range(children)]
    processes = []
    for port in ports:
        argv = [
            sys.executable, "-m", "child", "--profile", str(profile), "--api-port", str(port),
            "--stream-port", str(free_port()), "--browser-port", str(free_port()), "--engine", "mock",
        ]  # fmt: skip
        processes.append(
            subprocess.Popen(
                argv,
                env={**os.environ, **env, "CHILD_TOKEN": token},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
    try:
        for port in ports:
            wait_until(
                lambda p=port: httpx.get(f"http://127.0.0.1:{p}/health").status_code == 200, 30, "a child"
            )
        yield ports, token
    finally:
        for process in processes:
            stop(process)


async def client(port: int, body: bytes, headers: str, count: int, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{headers}\r\n"
    ).encode() + body
    for _ in range(count):
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode(errors="replace"))
        lowered = head.lower()
        if b"content-length:" in lowered:
            length = int(lowered.split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
        else:  # chunked: a stream, read to its last chunk
            await reader.readuntil(b"\r\n0\r\n\r\n")
        latencies.append(time.perf_counter() - started)
    writer.close()


async def load(ports: list[int], body: bytes, headers: str, clients: int, total: int) -> list[float]:
    latencies: list[float] = []
    per_client = total // clients
    await asyncio.gather(
        *(client(ports[i % len(ports)], body, headers, per_client, latencies) for i in range(clients))
    )
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(children: int, requests: int, folder: Path) -> dict[str, object]:
    results: dict[str, object] = {}
    with direct_children(children, {}, folder) as (ports, token):
        for name, body in (("non-stream", BODY), ("stream", STREAM_BODY)):
            asyncio.run(load(ports, body, f"X-Child-Token: {token}\r\n", children, 200))  # warm-up
            results[f"direct {name}"] = asyncio.run(
                load(ports, body, f"X-Child-Token: {token}\r\n", children, requests)
            )
    with coordinator(children, {}, folder / "latency") as (port, _):
        for name, body in (("non-stream", BODY), ("stream", STREAM_BODY)):
            asyncio.run(load([port], body, "", children, 200))
            results[f"coordinator {name}"] = asyncio.run(load([port], body, "", children, requests))
    table: dict[str, object] = {}
    for name in ("non-stream", "stream"):
        direct = results[f"direct {name}"]
        through = results[f"coordinator {name}"]
        assert isinstance(direct, list) and isinstance(through, list)
        table[name] = {
            "direct_p50_ms": round(percentile(direct, 0.5) * 1000, 3),
            "direct_p99_ms": round(percentile(direct, 0.99) * 1000, 3),
            "coordinator_p50_ms": round(percentile(through, 0.5) * 1000, 3),
            "coordinator_p99_ms": round(percentile(through, 0.99) * 1000, 3),
            "added_p50_ms": round((percentile(through, 0.5) - percentile(direct, 0.5)) * 1000, 3),
            "added_p99_ms": round((percentile(through, 0.99) - percentile(direct, 0.99)) * 1000, 3),
            "requests": len(through),
        }
    return table


def saturation(children: int, seconds: float, folder: Path) -> dict[str, object]:
    clients = 4 * children
    work = folder / "saturation"
    with coordinator(children, {"MOCK_FIRST_TOKEN_MS": "200"}, work) as (port, _):
        started = time.time()
        asyncio.run(load([port], BODY, "", clients, int(clients * seconds / 0.2 / 4)))
        wall = time.time() - started
    serving = 0.0
    served = 0
    for log in (work / "logs").glob("bench-*.log"):
        for line in log.read_text().splitlines():
            event = json.loads(line) if line.startswith("{") else {}
            if event.get("event") == "request_finished":
                serving += event["duration_ms"] / 1000
                served += 1
    return {
        "children": children,
        "clients": clients,
        "wall_seconds": round(wall, 2),
        "requests": served,
        "busy_share": round(serving / (children * wall), 4),
        "ideal_requests": int(children * wall / 0.2),
    }


def memory(folder: Path, requests: int) -> dict[str, object]:
    with coordinator(8, {}, folder / "memory") as (port, process):
        idle = psutil.Process(process.pid).memory_info().rss
        asyncio.run(load([port], BODY, "", 8, requests))
        asyncio.run(load([port], STREAM_BODY, "", 8, requests))
        loaded = psutil.Process(process.pid).memory_info().rss
        child_rss = [c.memory_info().rss for c in psutil.Process(process.pid).children()]
    return {
        "children": 8,
        "requests": 2 * requests,
        "coordinator_rss_mb_idle": round(idle / 2**20, 1),
        "coordinator_rss_mb_after": round(loaded / 2**20, 1),
        "mock_child_rss_mb": round(statistics.mean(child_rss) / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--children", type=int, default=2)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=10.0)
    options = parser.parse_args()
    memory_gib = psutil.virtual_memory().total / 2**30
    report: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {memory_gib:.0f} GiB, "
        f"Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }
    with tempfile.TemporaryDirectory(prefix="coordinator-bench-") as tmp:
        folder = Path(tmp)
        report["latency"] = latency(options.children, options.requests, folder)
        report["saturation"] = saturation(options.children, options.seconds, folder)
        report["memory"] = memory(folder, options.requests)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
