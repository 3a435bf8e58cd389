"""What the coordinator costs: added latency, how busy it keeps children, its memory.

    .venv/bin/python bench/overhead.py [--children 2] [--requests 2000] [--rounds 5] [--seconds 10]

1. Latency: the same mock children (no delay) called directly and through the
   coordinator, with as many concurrent clients as children, in alternating rounds;
   p50/p99 of each and the difference (medians over rounds), non-stream and stream.
2. Saturation: MOCK_FIRST_TOKEN_MS=200 and four clients per child for a while; the share
   of wall time the children spent serving, from their own request logs.
3. Memory: the coordinator's resident set with 8 children, after a few thousand requests.

The load generator (bench/common.py) is a minimal HTTP/1.1 client on asyncio streams
(keep-alive, one connection per client), so that its own cost stays small next to what it
measures.
"""

from __future__ import annotations

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
    command_line,
    coordinator,
    direct_children,
    finished_requests,
    load,
    machine,
    percentile,
)


def latency(children: int, requests: int, rounds: int, folder: Path) -> dict[str, object]:
    """Direct and through the coordinator, in alternating rounds so that a change in the
    machine's load hits both alike; medians over rounds, and of the per-round differences."""
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with (
        direct_children(children, {}, folder) as (ports, token),
        coordinator(children, {}, folder / "latency") as run,
    ):
        targets = {"direct": (ports, f"X-Child-Token: {token}\r\n"), "coordinator": ([run.port], "")}
        for _ in range(rounds):
            for name, body in (("non-stream", BODY), ("stream", STREAM_BODY)):
                for target, (to, headers) in targets.items():
                    asyncio.run(load(to, body, headers, children, 200, strict=True))  # warm-up
                    took = asyncio.run(load(to, body, headers, children, requests, strict=True)).latencies
                    runs.setdefault((name, target), []).append(
                        (percentile(took, 0.5) * 1000, percentile(took, 0.99) * 1000)
                    )
    table: dict[str, object] = {}
    for name in ("non-stream", "stream"):
        direct, through = runs[(name, "direct")], runs[(name, "coordinator")]
        pairs = list(zip(through, direct, strict=True))
        table[name] = {
            "direct_p50_ms": round(statistics.median(p50 for p50, _ in direct), 3),
            "direct_p99_ms": round(statistics.median(p99 for _, p99 in direct), 3),
            "coordinator_p50_ms": round(statistics.median(p50 for p50, _ in through), 3),
            "coordinator_p99_ms": round(statistics.median(p99 for _, p99 in through), 3),
            "added_p50_ms": round(statistics.median(c[0] - d[0] for c, d in pairs), 3),
            "added_p99_ms": round(statistics.median(c[1] - d[1] for c, d in pairs), 3),
            "added_p50_ms_rounds": [round(c[0] - d[0], 3) for c, d in pairs],
            "requests_per_round": requests,
            "rounds": rounds,
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
    parser = command_line(__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="per target, mode and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    options = parser.parse_args()
    report: dict[str, object] = dict(machine())
    with tempfile.TemporaryDirectory(prefix="coordinator-bench-") as tmp:
        folder = Path(tmp)
        report["latency"] = latency(options.children, options.requests, options.rounds, folder)
        report["saturation"] = saturation(options.children, options.seconds, folder)
        report["memory"] = memory(folder, options.requests)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
