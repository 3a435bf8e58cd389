"""A well-behaved client's latency while every hostile client attacks at once.

    .venv/bin/python bench/hostile.py [--children 2] [--quiet 10] [--seconds 30]

The coordinator runs with mock children and the limits the hostile-client test uses
(`--max-connections 300 --header-timeout 2 --send-timeout 2`). One client sends
non-stream requests back to back on a keep-alive connection, first alone for `--quiet`
seconds, then for `--seconds` while `tests/support/hostile.py` runs, in a process of its
own: slow heads, idle connections beyond the cap, a stream never read, 50 MB bodies
without a key, pipelined floods. Reported: the client's p50/p99/max and failures in both
phases, the coordinator's peak RSS, and what each attack met.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from common import BODY, command_line, coordinator, load, machine, percentile

KEY = "bench-hostile-key"
LIMITS = ("--max-connections", "300", "--header-timeout", "2", "--send-timeout", "2")


def measure(port: int, seconds: float, process: psutil.Process) -> dict[str, Any]:
    """The well-behaved client for `seconds`: its latencies, failures, and the peak RSS seen."""
    latencies: list[float] = []
    failed = 0
    peak = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        tally = asyncio.run(load([port], BODY, f"Authorization: Bearer {KEY}\r\n", 1, 50))
        latencies += tally.latencies
        failed += sum(count for status, count in tally.statuses.items() if status != 200)
        peak = max(peak, process.memory_info().rss)
    return {
        "requests": len(latencies) + failed,
        "failed": failed,
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
        "peak_rss_mb": round(peak / 2**20, 1),
    }


def main() -> None:
    parser = command_line(__doc__)
    parser.add_argument("--quiet", type=float, default=10.0, help="seconds without attack first")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds under attack")
    args = parser.parse_args()
    result: dict[str, Any] = machine()
    with (
        tempfile.TemporaryDirectory(prefix="bench-hostile-") as folder,
        coordinator(args.children, {"COORDINATOR_API_KEY": KEY}, Path(folder), LIMITS) as run,
    ):
        process = psutil.Process(run.process.pid)
        result["quiet"] = measure(run.port, args.quiet, process)
        attackers = subprocess.Popen(
            [sys.executable, "-m", "tests.support.hostile", "--port", str(run.port),
             "--seconds", str(args.seconds), "--key", KEY],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
        try:
            time.sleep(1.0)  # every attack under way before measuring
            result["under_attack"] = measure(run.port, args.seconds - 2.0, process)
            output, _ = attackers.communicate(timeout=60)
        finally:
            attackers.kill()
            attackers.wait()
        result["attacks"] = json.loads(output)
        result["coordinator_rss_mb_after"] = round(process.memory_info().rss / 2**20, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
