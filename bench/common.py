"""What the benchmark scripts share: processes to start and stop, and a small load generator.

The load generator is a minimal HTTP/1.1 client on asyncio streams (keep-alive, one
connection per client), so that its own cost stays small next to what it measures.
Every process started here runs in its own session; `stop` signals its process group,
then kills any descendant it had that is still alive, so no process or port is left.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import uvloop

# The scripts run as `.venv/bin/python bench/x.py`: put the repository on the path for `tests`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.processes import free_port as free_port
from tests.support.processes import free_port_bases as free_port_bases
from tests.support.processes import stop_process_group as stop_process_group

# Benchmarks take ports above the tests' so that both can run at once.
BENCH_PORTS = {"low": 30000, "high": 32700}

T = TypeVar("T")

PROMPT = "the quick brown fox"
BODY = json.dumps({"model": "mock", "messages": [{"role": "user", "content": PROMPT}]}).encode()
STREAM_BODY = json.dumps(
    {"model": "mock", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
).encode()
EMPTY_PROFILE = '{"cookies": [], "origins": []}'


def command_line(doc: str | None, children: bool = True) -> argparse.ArgumentParser:
    """A benchmark's options: its docstring as --help, and --children N unless it has none."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if children:
        parser.add_argument("--children", type=int, default=2, help="N, the number of children (default 2)")
    return parser


def machine() -> dict[str, str]:
    memory_gib = psutil.virtual_memory().total / 2**30
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {memory_gib:.0f} GiB, "
        f"Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def spawn(argv: Sequence[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
    output = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            list(argv),
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        if log is not None:
            output.close()  # type: ignore[union-attr]


@dataclass
class Coordinator:
    port: int
    process: subprocess.Popen[bytes]
    log_dir: Path
    http: httpx.Client = field(init=False)  # one keep-alive client: polling stays cheap

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def children(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self.http.get("/admin/children").json()["data"]
        return data

    def metrics(self) -> str:
        return self.http.get("/metrics").text


@contextmanager
def coordinator(
    children: int, env: dict[str, str], folder: Path, args: Sequence[str] = ()
) -> Iterator[Coordinator]:
    """`coordinator run --engine mock` with `children` profiles, on free local ports."""
    profiles = folder / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    for i in range(children):
        (profiles / f"bench-{i}.json").write_text(EMPTY_PROFILE)
    port = free_port()
    (base,) = free_port_bases(
        3 * children, **BENCH_PORTS
    )  # api, stream and browser ports, one after the other
    argv = [
        sys.executable, "-m", "coordinator", "run", "--profiles", str(profiles), "--host", "127.0.0.1",
        "--port", str(port), "--engine", "mock", "--base-api-port", str(base),
        "--base-stream-port", str(base + children), "--base-browser-port", str(base + 2 * children),
        "--log-dir", str(folder / "logs"), "--data-dir", str(folder / "data"), "--max-queue", "1000",
        "--log-format", "json", *args,
    ]  # fmt: skip
    process = spawn(argv, env, folder / "coordinator.log")
    run = Coordinator(port, process, folder / "logs")
    try:
        wait_until(
            lambda: run.http.get("/ready").json()["children"]["serving"] == children,
            60,
            "the coordinator's children",
        )
        yield run
    finally:
        run.http.close()
        stop_process_group(process, timeout=15)


@contextmanager
def direct_children(children: int, env: dict[str, str], folder: Path) -> Iterator[tuple[list[int], str]]:
    """Standalone mock children (`python -m child`), as the coordinator would start them; their
    output goes to `folder/direct-<i>.log`."""
    token = secrets.token_urlsafe(16)
    profile = folder / "direct.json"
    profile.write_text(EMPTY_PROFILE)
    ports = [free_port() for _ in range(children)]
    processes = []
    try:
        for i, port in enumerate(ports):
            argv = [
                sys.executable, "-m", "child", "--profile", str(profile), "--api-port", str(port),
                "--stream-port", str(free_port()), "--browser-port", str(free_port()), "--engine", "mock",
            ]  # fmt: skip
            # Its log goes to a file, as a child's does under the coordinator (through a pipe).
            processes.append(spawn(argv, {**env, "CHILD_TOKEN": token}, folder / f"direct-{i}.log"))
        for port in ports:
            health = f"http://127.0.0.1:{port}/health"
            wait_until(lambda: httpx.get(health).status_code == 200, 30, "a child")  # noqa: B023
        yield ports, token
    finally:
        for process in processes:
            stop_process_group(process, timeout=15)


# -- the load generator ------------------------------------------------------------------


@dataclass
class Tally:
    """What a run of clients got: latencies of the 200 answers, and every status counted."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    codes: dict[str, int] = field(default_factory=dict)  # error codes of the refusals
    wall: float = 0.0
    finished: dict[str, float] = field(default_factory=dict)  # request id → latency, when asked

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    def count(self, status: int, body: bytes) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status != 200:
            try:
                code = str(json.loads(body)["error"]["code"])
            except (ValueError, KeyError, TypeError):
                code = f"{status} (not JSON)"
            self.codes[code] = self.codes.get(code, 0) + 1


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes, bool]:
    """Send one request, read its whole answer: status, body (or chunks), and keep-alive."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lowered = head.lower()
    if b"content-length:" in lowered:
        length = int(lowered.split(b"content-length:")[1].split(b"\r\n")[0])
        body = await reader.readexactly(length)
    else:  # chunked: a stream, read to its last chunk
        body = await reader.readuntil(b"\r\n0\r\n\r\n")
    return status, body, b"connection: close" not in lowered


def request_bytes(body: bytes, headers: str = "", path: str = "/v1/chat/completions") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{headers}\r\n"
    ).encode() + body


async def client(
    port: int,
    body: bytes,
    headers: str,
    count: int,
    tally: Tally,
    *,
    ids: str | None = None,
    strict: bool = False,
) -> None:
    """`count` requests back to back on one keep-alive connection (reopened if closed).

    With `ids`, each request carries `X-Request-ID: <ids>-<n>` and its latency is kept by id.
    With `strict`, any answer but 200 raises.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    plain = request_bytes(body, headers)
    try:
        for n in range(count):
            request_id = f"{ids}-{n}" if ids else None
            request = request_bytes(body, f"{headers}X-Request-ID: {request_id}\r\n") if request_id else plain
            started = time.perf_counter()
            status, answer, keep = await exchange(reader, writer, request)
            elapsed = time.perf_counter() - started
            if strict and status != 200:
                raise RuntimeError(f"{status}: {answer[:300]!r}")
            tally.count(status, answer)
            if status == 200:
                tally.latencies.append(elapsed)
                if request_id:
                    tally.finished[request_id] = elapsed
            if not keep:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def due_times(rate: float, seconds: float) -> AsyncIterator[float]:
    """`rate` times a second for `seconds`: each due time (perf_counter), once it has come."""
    interval = 1 / rate
    started = time.perf_counter()
    for index in range(int(rate * seconds)):
        due = started + index * interval
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        yield due


async def load(
    ports: Sequence[int],
    body: bytes,
    headers: str,
    clients: int,
    total: int,
    *,
    ids: str | None = None,
    strict: bool = False,
) -> Tally:
    """`clients` concurrent clients, spread round-robin over `ports`, `total` requests in all."""
    tally = Tally()
    per_client = max(1, total // clients)
    started = time.perf_counter()
    await asyncio.gather(
        *(
            client(
                ports[i % len(ports)],
                body,
                headers,
                per_client,
                tally,
                ids=f"{ids}{i}" if ids else None,
                strict=strict,
            )
            for i in range(clients)
        )
    )
    tally.wall = time.perf_counter() - started
    return tally


@dataclass
class Schedule:
    """What an open-loop run got: per request, its latency counted from the moment it was
    due (so that time spent waiting to be sent shows), and how late it was sent."""

    latencies: list[float] = field(default_factory=list)
    sent_late: list[float] = field(default_factory=list)
    errors: int = 0
    wall: float = 0.0
    connections: int = 0  # opened: about the most requests that were in flight at once


async def open_loop(
    port: int, body: bytes, rate: float, seconds: float, *, max_connections: int = 64
) -> Schedule:
    """Requests at a fixed `rate` for `seconds`, each sent when due whether or not the ones
    before it are answered (an open loop: a slow server meets the same arrivals, and its
    queue shows in the latencies); keep-alive connections, one per request in flight."""
    schedule = Schedule()
    request = request_bytes(body)
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    in_flight = asyncio.Semaphore(max_connections)

    async def one(due: float) -> None:
        async with in_flight:
            if idle:
                reader, writer = idle.pop()
            else:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                schedule.connections += 1
            schedule.sent_late.append(time.perf_counter() - due)
            try:
                status, _, keep = await exchange(reader, writer, request)
            except (OSError, asyncio.IncompleteReadError):
                schedule.errors += 1
                writer.close()
                return
            if status == 200:
                schedule.latencies.append(time.perf_counter() - due)
            else:
                schedule.errors += 1
            if keep:
                idle.append((reader, writer))
            else:
                writer.close()

    started = time.perf_counter()
    tasks = [asyncio.create_task(one(due)) async for due in due_times(rate, seconds)]
    await asyncio.gather(*tasks)
    schedule.wall = time.perf_counter() - started
    for _, writer in idle:
        writer.close()
    return schedule


def run_fast(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a load generator on uvloop, as the coordinator runs: it takes less of the
    machine's CPU from what it measures than asyncio's own loop."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def finished_requests(log_dir: Path, pattern: str = "*.log") -> list[dict[str, Any]]:
    """The `request_finished` events of the children's logs in `log_dir`, each with its `child`."""
    events = []
    for log in sorted(log_dir.glob(pattern)):
        for line in log.read_text().splitlines():
            if not line.startswith("{") or '"request_finished"' not in line:
                continue
            event = json.loads(line)
            if event.get("event") == "request_finished":
                event["child"] = log.stem
                events.append(event)
    return events
