"""What the usage ledger costs a request: p50 and p99 latency with and without it.

    .venv/bin/python bench/ledger.py [--children 2] [--requests 4000] [--rounds 5] [--clients 8]

Two coordinators over the same number of mock children (no delay), one run with
`--no-ledger` and one with the ledger on (its file in a temporary folder), are loaded in
alternating rounds by the same closed-loop clients (bench/common.py: keep-alive, one
connection per client), so that a change in the machine's load hits both alike. Reported:
each one's p50/p99 and achieved requests per second (medians over rounds), the added p50
(median of the per-round differences), and the rows the ledger wrote and dropped.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BODY, command_line, coordinator, load, machine, percentile


def counter(metrics: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", metrics, re.MULTILINE)
    return float(found.group(1)) if found else float("nan")


def compare(children: int, requests: int, rounds: int, clients: int, folder: Path) -> dict[str, object]:
    results: dict[str, list[tuple[float, float, float]]] = {"off": [], "on": []}
    with (
        coordinator(children, {}, folder / "off", ["--no-ledger"]) as off,
        coordinator(children, {}, folder / "on", ["--data-dir", str(folder / "on" / "data")]) as on,
    ):
        runs = {"off": off, "on": on}
        for _ in range(rounds):
            for name, run in runs.items():
                asyncio.run(load([run.port], BODY, "", clients, 500, strict=True))  # warm-up
                tally = asyncio.run(load([run.port], BODY, "", clients, requests, strict=True))
                took = tally.latencies
                results[name].append(
                    (percentile(took, 0.5) * 1000, percentile(took, 0.99) * 1000, len(took) / tally.wall)
                )
        metrics = on.metrics()
    pairs = list(zip(results["on"], results["off"], strict=True))
    return {
        **{
            f"{name}_{field}": round(statistics.median(r[index] for r in results[name]), 3)
            for name in ("off", "on")
            for index, field in enumerate(("p50_ms", "p99_ms", "requests_per_second"))
        },
        "added_p50_ms": round(statistics.median(a[0] - b[0] for a, b in pairs), 4),
        "added_p50_ms_rounds": [round(a[0] - b[0], 4) for a, b in pairs],
        "added_p99_ms": round(statistics.median(a[1] - b[1] for a, b in pairs), 4),
        "ledger_rows_written": counter(metrics, "coordinator_ledger_rows_written_total"),
        "ledger_rows_dropped": counter(metrics, "coordinator_ledger_rows_dropped_total"),
        "requests_per_round": requests,
        "clients": clients,
        "rounds": rounds,
    }


def main() -> None:
    parser = command_line(__doc__)
    parser.add_argument("--requests", type=int, default=4000, help="per coordinator and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8, help="concurrent closed-loop clients")
    options = parser.parse_args()
    report: dict[str, object] = dict(machine())
    with tempfile.TemporaryDirectory(prefix="coordinator-bench-ledger-") as tmp:
        report["ledger"] = compare(
            options.children, options.requests, options.rounds, options.clients, Path(tmp)
        )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
