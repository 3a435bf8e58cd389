"""What a browser child costs: how fast the demo starts, what the coordinator and the child
add to the time to first token, and how much memory a child and its browser take.

    .venv/bin/python bench/browser.py [--starts 3] [--requests 20] [--warmup 3]

1. Cold start: `coordinator run --demo` (the replica and two Chromium children), from
   spawning the process until GET /ready counts both children serving, polled every 50 ms;
   repeated. The coordinator's and the children's logs split each start into milestones.
2. Latency: streamed requests through the coordinator, one at a time, against the demo's
   replica. The capture logs (`answer_captured`) when the site's network delivered the
   first text and when the answer ended, on the monotonic clock every process here
   shares; the client notes when the first content chunk, the last one and `[DONE]`
   reached it. The differences are what the child and the coordinator add: to the time to
   first token, and between the site's last frame and the client's `[DONE]`.
3. Memory: proportional set size of each child with its Playwright driver and browser, once
   both are ready and again after the requests; the coordinator's own resident set.

Every process started here is stopped at the end: the coordinator by its process group,
then every descendant it had (browsers included) by a sweep.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from child.engines.browser import launch_args
from child.replica import ReplicaConfig
from coordinator.cli.demo import DEMO_PROFILES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BENCH_PORTS,
    PROMPT,
    command_line,
    free_port_bases,
    machine,
    percentile,
    spawn,
    stop_process_group,
)

COORDINATOR = str(Path(sys.executable).with_name("coordinator"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = launch_args()
CHILDREN = len(DEMO_PROFILES)
MB = 2**20

# -- processes ---------------------------------------------------------------------------


def stop_all(process: subprocess.Popen[bytes]) -> None:
    """Stop the coordinator and everything under it; fail loudly if anything survives."""
    try:
        tree = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        tree = []
    stop_process_group(process, timeout=15)
    _, alive = psutil.wait_procs(tree, timeout=5)
    if alive:
        raise RuntimeError(f"processes left behind: {[p.pid for p in alive]}")


@dataclass(frozen=True, slots=True)
class Demo:
    process: subprocess.Popen[bytes]
    port: int
    folder: Path
    spawned: float  # time.time() just before the spawn


@dataclass(frozen=True, slots=True)
class ChildInfo:
    id: str
    pid: int
    browser_port: int
    site_url: str
    profile: str


@contextlib.contextmanager
def demo(folder: Path) -> Iterator[Demo]:
    (base,) = free_port_bases(1 + 3 * CHILDREN, **BENCH_PORTS)
    port, api, stream, browser = base, base + 1, base + 1 + CHILDREN, base + 1 + 2 * CHILDREN
    folder.mkdir(parents=True)
    argv = [
        COORDINATOR, "run", "--demo", "--host", "127.0.0.1", "--port", str(port),
        "--base-api-port", str(api), "--base-stream-port", str(stream), "--base-browser-port", str(browser),
        "--log-dir", str(folder), "--log-format", "json",
    ]  # fmt: skip
    spawned = time.time()
    process = spawn(argv, {}, folder / "coordinator.log")
    try:
        yield Demo(process, port, folder, spawned)
    finally:
        stop_all(process)


def wait_ready(run: Demo, timeout: float = 60.0) -> float:
    """Seconds from the spawn until /ready counts every demo child serving."""
    url = f"http://127.0.0.1:{run.port}/ready"
    while time.time() - run.spawned < timeout:
        if run.process.poll() is not None:
            raise RuntimeError(f"the coordinator exited with code {run.process.returncode}; see {run.folder}")
        with contextlib.suppress(httpx.HTTPError, ValueError):
            if httpx.get(url, timeout=1.0).json()["children"]["serving"] == CHILDREN:
                return time.time() - run.spawned
        time.sleep(0.05)
    raise RuntimeError(f"the demo children were not ready within {timeout:g}s; see {run.folder}")


def children_of(run: Demo) -> list[ChildInfo]:
    found = []
    for entry in httpx.get(f"http://127.0.0.1:{run.port}/admin/children", timeout=5).json()["data"]:
        argv = psutil.Process(entry["pid"]).cmdline()
        found.append(
            ChildInfo(
                id=entry["id"],
                pid=entry["pid"],
                browser_port=entry["ports"]["browser"],
                site_url=argv[argv.index("--site-url") + 1],
                profile=argv[argv.index("--profile") + 1],
            )
        )
    return found


def _log_events(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.startswith("{")]


def _at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"]).timestamp()


def start_milestones(run: Demo) -> dict[str, float]:
    """When (seconds after the spawn) each step of the start was done, for the later child."""
    events = _log_events(run.folder / "coordinator.log")
    children = [_log_events(run.folder / f"{name}.log") for name in DEMO_PROFILES]

    def latest(found: list[float]) -> float:
        return round(max(found) - run.spawned, 3)

    return {
        "replica_answering_s": latest([_at(e) for e in events if e["event"] == "demo_site"]),
        "children_spawned_s": latest(
            [_at(e) for e in events if e["event"] == "child_state" and e["new"] == "starting"]
        ),
        "children_serving_http_s": latest(
            [_at(e) for log in children for e in log if e["event"] == "child_started"]
        ),
        "browsers_and_pages_open_s": latest(
            [_at(e) for log in children for e in log if e["event"] == "child_ready"]
        ),
        "coordinator_saw_ready_s": latest(
            [_at(e) for e in events if e["event"] == "child_state" and e["new"] == "ready"]
        ),
    }


# -- latency -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Streamed:
    """One streamed request through the coordinator; times are time.monotonic()."""

    child: str
    first: float
    last: float
    done: float


def stream_once(client: httpx.Client, port: int, model: str, prompt: str) -> Streamed:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": prompt}]}
    first = last = 0.0
    with client.stream("POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.read().decode(errors='replace')}")
        for line in response.iter_lines():
            if line == "data: [DONE]":
                return Streamed(response.headers["x-coordinator-child"], first, last, time.monotonic())
            if line.startswith("data: "):
                event = json.loads(line.removeprefix("data: "))
                if "error" in event:
                    raise RuntimeError(f"the stream ended in an error: {event['error']}")
                if event["choices"] and event["choices"][0]["delta"].get("content"):
                    last = time.monotonic()
                    first = first or last
    raise RuntimeError("the stream ended without [DONE]")


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 0.5), 1), "p90": round(percentile(values, 0.9), 1)}


def captured(run: Demo, child: str) -> list[dict[str, Any]]:
    """The capture's record of each answer a child read, in order."""
    return [e for e in _log_events(run.folder / f"{child}.log") if e["event"] == "answer_captured"]


def latency(run: Demo, requests: int, warmup: int) -> dict[str, Any]:
    """Streamed requests, one at a time, each matched with the capture's record of it."""
    model = "replica-flash"  # no thinking: the first content chunk is the first text
    results: list[Streamed] = []
    with httpx.Client(timeout=60) as client:
        for index in range(warmup + requests):
            # The markdown document: many frames, brackets and quotes inside the strings.
            streamed = stream_once(client, run.port, model, f"{PROMPT} {index}, in markdown")
            if index >= warmup:
                results.append(streamed)
    added_first, added_done, done_after_last = [], [], []
    seen = {child: captured(run, child) for child in DEMO_PROFILES}
    taken = dict.fromkeys(DEMO_PROFILES, 0)
    for streamed in results:
        # The warm-up answers come first in each child's log; skip as many as it served.
        records = seen[streamed.child]
        served = sum(1 for r in results if r.child == streamed.child)
        record = records[len(records) - served + taken[streamed.child]]
        taken[streamed.child] += 1
        added_first.append((streamed.first - record["first_text_at"]) * 1000)
        added_done.append((streamed.done - record["ended_at"]) * 1000)
        done_after_last.append((streamed.done - streamed.last) * 1000)
    return {
        "requests": len(results),
        "model": model,
        "ttft_added_over_network_first_text_ms": summary(added_first),
        "done_after_network_end_ms": summary(added_done),
        "done_after_last_token_ms": summary(done_after_last),
    }


# -- memory ------------------------------------------------------------------------------


def tree_memory(pid: int) -> dict[str, float]:
    """PSS of a child and everything under it: its Playwright driver and its browser."""
    root = psutil.Process(pid)
    pss = {"child_python": 0, "playwright_driver": 0, "browser": 0}
    rss = uss = processes = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            info = proc.memory_full_info()
            exe = (proc.cmdline() or [""])[0]
        except psutil.Error:
            continue
        if proc.pid == pid:
            kind = "child_python"
        elif "chromium" in exe:
            kind = "browser"
        else:
            kind = "playwright_driver"
        pss[kind] += info.pss
        rss += info.rss
        uss += info.uss
        processes += 1
    return {
        "pss_mb": round(sum(pss.values()) / MB, 1),
        **{f"{kind}_pss_mb": round(value / MB, 1) for kind, value in pss.items()},
        "uss_mb": round(uss / MB, 1),
        "rss_sum_mb": round(rss / MB, 1),
        "processes": processes,
    }


def memory(run: Demo, children: list[ChildInfo]) -> dict[str, Any]:
    coordinator = psutil.Process(run.process.pid)
    info = coordinator.memory_full_info()
    replica = next(p for p in coordinator.children() if "child.replica" in p.cmdline())
    return {
        "children": {child.id: tree_memory(child.pid) for child in children},
        "coordinator_rss_mb": round(info.rss / MB, 1),
        "coordinator_pss_mb": round(info.pss / MB, 1),
        "replica_pss_mb": round(replica.memory_full_info().pss / MB, 1),
    }


def main() -> None:
    parser = command_line(__doc__, children=False)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    options = parser.parse_args()
    pace = ReplicaConfig()
    # The load average (before, and after: that one includes this script) says how busy the
    # machine was; other work on it shows in every figure here.
    report: dict[str, Any] = {
        **machine(),
        "replica_pace": {"first_token_ms": pace.first_token_ms, "token_ms": pace.token_ms},
    }
    starts = []
    with tempfile.TemporaryDirectory(prefix="coordinator-bench-browser-") as tmp:
        for attempt in range(options.starts):
            with demo(Path(tmp) / f"start-{attempt}") as run:
                ready = wait_ready(run)
                starts.append({"ready_s": round(ready, 3), **start_milestones(run)})
                if attempt < options.starts - 1:
                    continue
                # The last start stays up for the other measurements.
                children = children_of(run)
                report["memory_ready"] = memory(run, children)
                report["latency"] = latency(run, options.requests, options.warmup)
                report["memory_after_requests"] = memory(run, children)
    report["cold_start"] = {
        "runs": starts,
        "median_ready_s": round(statistics.median(s["ready_s"] for s in starts), 3),
    }
    report["load_average_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
