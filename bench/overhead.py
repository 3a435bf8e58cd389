"""What the coordinator costs: added latency, how busy it keeps children, its memory.

    .venv/bin/python bench/overhead.py [--children 2] [--requests 3000] [--seconds 10]

1. Latency: the same mock children (no delay) called directly and through the
   coordinator, with as many concurrent clients as children; p50/p99 of each and the
   difference, non-stream and stream.
2. Saturation: MOCK_FIRST_TOKEN_MS=200 and four clients per child for a while; the share
   of wall time the children spent serving, from their own request logs.
3. Memory: the coordinator's resident set with 8 children, after a few thousand requests.

The load generator (bench/common.py) is a minimal HTTP/1.1 client on asyncio streams
(keep-alive, one connection per client), so that its own cost stays small next to what it
measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BODY,
    STREAM_BODY,
    coordinator,
    direct_children,
    finished_requests,
    load,
    machine,
    percentile,
)


def latency(children: int, requests: int, folder: Path) -> dict[str, object]:
    results: dict[str, object] = {}
    with direct_children(children, {}, folder) as (ports, token):
        for name, body in (("non-stream", BODY), ("stream", STREAM_BODY)):
            headers = f"X-Child-Token: {token}\r\n"
            asyncio.run(load(ports, body, headers, children, 200, strict=True))  # warm-up
            results[f"direct {name}"] = asyncio.run(
                load(ports, body, headers, children, requests, strict=True)
            ).latencies
    with coordinator(children, {}, folder / "latency") as run:
        for name, body in (("non-stream", BODY), ("stream", STREAM_BODY)):
            asyncio.run(load([run.port], body, "", children, 200, strict=True))
            results[f"coordinator {name}"] = asyncio.run(
                load([run.port], body, "", children, requests, strict=True)
            ).latencies
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
    with coordinator(children, {"MOCK_FIRST_TOKEN_MS": "200"}, work) as run:
        started = time.time()
        asyncio.run(load([run.port], BODY, "", clients, int(clients * seconds / 0.2 / 4), strict=True))
        wall = time.time() - started
    events = finished_requests(work / "logs", "bench-*.log")
    serving = sum(event["duration_ms"] for event in events) / 1000
    served = len(events)
    return {
        "children": children,
        "clients": clients,
        "wall_seconds": round(wall, 2),
        "requests": served,
        "busy_share": round(serving / (children * wall), 4),
        "ideal_requests": int(children * wall / 0.2),
    }


def memory(folder: Path, requests: int) -> dict[str, object]:
    with coordinator(8, {}, folder / "memory") as run:
        idle = psutil.Process(run.process.pid).memory_info().rss
        asyncio.run(load([run.port], BODY, "", 8, requests, strict=True))
        asyncio.run(load([run.port], STREAM_BODY, "", 8, requests, strict=True))
        loaded = psutil.Process(run.process.pid).memory_info().rss
        child_rss = [c.memory_info().rss for c in psutil.Process(run.process.pid).children()]
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
    report: dict[str, object] = dict(machine())
    with tempfile.TemporaryDirectory(prefix="coordinator-bench-") as tmp:
        folder = Path(tmp)
        report["latency"] = latency(options.children, options.requests, folder)
        report["saturation"] = saturation(options.children, options.seconds, folder)
        report["memory"] = memory(folder, options.requests)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
