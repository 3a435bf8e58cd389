"""What the usage ledger costs a request: p50 and p99 latency with and without it.

    .venv/bin/python bench/ledger.py [--children 2] [--requests 4000] [--rounds 5] [--clients 8]

Two coordinators over the same number of mock children (no delay), one run with
`--no-ledger` and one with the ledger on (its file in a temporary folder), are loaded in
alternating rounds by the same closed-loop clients (bench/common.py: keep-alive, one
connection per client), so that a change in the machine's load hits both alike. Reported:
each one's p50/p99 and achieved requests per second (medians over rounds), the added p50
(median of the per-round differences), and the rows the ledger wrote and dropped.

Then `--path`: what the ledger adds on the request path at a fixed rate (default 1,000
requests per second, more than this machine's coordinators reach end to end). An event
loop records one entry (a real stream's last bytes) per tick into a real ledger, its
writer thread writing to SQLite as in a run, and measures each tick's lateness against
its schedule and the time of `record()` itself; the same loop with the ledger off is the
baseline. What the ledger can add to a request is exactly this: the call, and the writer
thread taking the GIL from the loop.

Then `--open-loop`: both coordinators end to end at a fixed rate (`--rate`), each request
sent when due. Besides the client's p50/p99, it reports each coordinator's own p50 (the
`duration_ms` of its request log lines: no time spent queued in the kernel or the client),
and the CPU per request of the ledger's writer thread apart from the event loop's. With
`--a-a` both coordinators run without the ledger: what the comparison itself resolves.

And `--writer`: the writer's CPU per row on one thread (making the row, the quota tally,
the insert; 40 batches of 500 rows, the first 5 left out), and the time to make the
`Entry` the event loop makes per request.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BODY, command_line, coordinator, due_times, load, machine, open_loop, percentile, run_fast

from coordinator.ledger.entry import Entry, row
from coordinator.ledger.quota import DailyLimits, QuotaTally
from coordinator.ledger.store import Store
from coordinator.ledger.writer import Ledger, LedgerConfig

# The last bytes of a real stream: what `row()` parses on the writer thread.
TAIL = (
    b'data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"mock",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop","logprobs":null}]}\n\n'
    b': usage {"usage":{"prompt_tokens":7,"completion_tokens":5,"total_tokens":12,'
    b'"completion_tokens_details":{"reasoning_tokens":0}}}\n\ndata: [DONE]\n\n'
)


# The end of a non-stream answer of the mock, whose usage `row()` reads.
ANSWER = (
    b'{"id":"chatcmpl-x","object":"chat.completion","created":1,"model":"mock","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"echo: the quick brown fox"},"finish_reason":"stop",'
    b'"logprobs":null}],"usage":{"prompt_tokens":7,"completion_tokens":5,"total_tokens":12,'
    b'"completion_tokens_details":{"reasoning_tokens":0}}}'
)


def _answered(index: int, tail: bytes, stream: bool = False) -> Entry:
    """The entry of a request answered now, as the edge makes it (`tail`: the answer's end)."""
    return Entry(time.time(), f"r{index}", "/v1/chat/completions", f"bench-{index % 2}", "mock", 200, None,
                 stream, 0.001, 0.002, "client-0", tail)  # fmt: skip


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


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _side_threads_cpu_seconds(process: psutil.Process) -> float:
    """The CPU of every thread but the event loop's: in a coordinator with the ledger, its writer."""
    side = [thread for thread in process.threads() if thread.id != process.pid]
    return float(sum(thread.user_time + thread.system_time for thread in side))


def _cpu_now(parent: psutil.Process, kids: list[psutil.Process]) -> tuple[float, float, float]:
    """CPU seconds so far: the coordinator's, its children's, its threads but the loop's."""
    return _cpu_seconds(parent), sum(_cpu_seconds(kid) for kid in kids), _side_threads_cpu_seconds(parent)


def _served_in(log: Path, offset: int) -> tuple[list[float], int]:
    """The `duration_ms` of the request lines the coordinator logged from `offset` on (its
    own time per request: from the head read to the answer written, without the time a
    request waited in the kernel or the client), and where the log ends now."""
    with log.open("rb") as lines:
        lines.seek(offset)
        data = lines.read()
    durations = [
        json.loads(line)["duration_ms"] for line in data.splitlines() if b'"event":"request",' in line
    ]
    return durations, offset + len(data)


def open_compare(
    children: int, rate: int, seconds: float, rounds: int, folder: Path, a_a: bool = False
) -> dict[str, object]:
    """Both coordinators at the same fixed rate, in alternating rounds (open loop: latency
    from each request's due time, so any queueing shows); per round p50, p99, the rate
    served, and the CPU each coordinator and its children spent per request.

    `a_a`: "on" runs without the ledger too, so the differences are what the comparison
    itself resolves on this machine."""
    ledger = ["--no-ledger"] if a_a else ["--data-dir", str(folder / "on" / "data")]
    fields = (
        "p50_ms",
        "p99_ms",
        "requests_per_second",
        "coordinator_cpu_us",
        "children_cpu_us",
        "sent_late_p50_ms",
        "writer_thread_cpu_us",
        "served_p50_ms",
    )
    results: dict[str, list[tuple[float, ...]]] = {"off": [], "on": []}
    errors = {"off": 0, "on": 0}
    connections = {"off": 0, "on": 0}
    with (
        coordinator(children, {}, folder / "off", ["--no-ledger"]) as off,
        coordinator(children, {}, folder / "on", ledger) as on,
    ):
        runs = {"off": off, "on": on}
        processes = {}
        logs = {name: folder / name / "coordinator.log" for name in runs}
        offsets = {}
        for name, run in runs.items():
            parent = psutil.Process(run.process.pid)
            processes[name] = (parent, parent.children(recursive=True))
            run_fast(open_loop(run.port, BODY, rate, 1.0))  # warm-up
            offsets[name] = logs[name].stat().st_size
        for index in range(rounds):
            # Off first in even rounds, on first in odd ones: what a round's order costs is shared.
            for name in ("off", "on") if index % 2 == 0 else ("on", "off"):
                run = runs[name]
                parent, kids = processes[name]
                before = _cpu_now(parent, kids)
                schedule = run_fast(open_loop(run.port, BODY, rate, seconds))
                after = _cpu_now(parent, kids)
                served, offsets[name] = _served_in(logs[name], offsets[name])
                took = schedule.latencies
                count = len(took) + schedule.errors
                errors[name] += schedule.errors
                connections[name] = max(connections[name], schedule.connections)
                results[name].append(
                    (
                        percentile(took, 0.5) * 1000,
                        percentile(took, 0.99) * 1000,
                        len(took) / schedule.wall,
                        (after[0] - before[0]) / count * 1e6,
                        (after[1] - before[1]) / count * 1e6,
                        percentile(schedule.sent_late, 0.5) * 1000,
                        (after[2] - before[2]) / count * 1e6,
                        percentile(served, 0.5),
                    )
                )
        metrics = on.metrics()
    pairs = list(zip(results["on"], results["off"], strict=True))
    added = [a[0] - b[0] for a, b in pairs]
    return {
        "rate_per_second": rate,
        "seconds_per_round": seconds,
        "rounds": rounds,
        **{
            f"{name}_{field}": round(statistics.median(r[index] for r in results[name]), 3)
            for name in ("off", "on")
            for index, field in enumerate(fields)
        },
        "added_p50_ms": round(statistics.median(added), 4),
        "added_p50_ms_rounds": [round(x, 4) for x in added],
        "added_p50_ms_spread": [round(min(added), 4), round(max(added), 4)],
        "added_served_p50_ms_rounds": [round(a[7] - b[7], 3) for a, b in pairs],
        "added_p99_ms": round(statistics.median(a[1] - b[1] for a, b in pairs), 4),
        "added_coordinator_cpu_us": round(statistics.median(a[3] - b[3] for a, b in pairs), 1),
        "errors": errors,
        "connections_opened": connections,
        "ledger_rows_written": counter(metrics, "coordinator_ledger_rows_written_total"),
        "ledger_rows_dropped": counter(metrics, "coordinator_ledger_rows_dropped_total"),
    }


async def _ticks(ledger: Ledger, rate: int, seconds: float) -> tuple[list[float], list[float]]:
    """Per tick: how late the loop ran it (ms), and how long `record()` took (ms)."""
    late: list[float] = []
    calls: list[float] = []
    async for due in due_times(rate, seconds):
        now = time.perf_counter()
        late.append((now - due) * 1000)
        ledger.record(_answered(len(late), TAIL, stream=True))
        calls.append((time.perf_counter() - now) * 1000)
    return late, calls


def path_cost(rate: int, seconds: float, rounds: int, folder: Path) -> dict[str, object]:
    results: dict[str, list[tuple[float, float, float, float]]] = {"off": [], "on": []}
    written = 0
    for index in range(rounds):
        for name in ("off", "on"):
            ledger = Ledger(LedgerConfig(folder / f"{name}-{index}", enabled=name == "on"))
            ledger.start()
            cpu = time.process_time()  # every thread's: the writer's work included
            try:
                late, calls = asyncio.run(_ticks(ledger, rate, seconds))
            finally:
                ledger.close()
            cpu_ms = (time.process_time() - cpu) * 1000 / len(late)
            written += ledger.written
            results[name].append(
                (percentile(late, 0.5), percentile(late, 0.99), percentile(calls, 0.5), cpu_ms)
            )
    pairs = list(zip(results["on"], results["off"], strict=True))
    return {
        "rate_per_second": rate,
        "seconds_per_round": seconds,
        "rounds": rounds,
        **{
            f"{name}_{field}": round(statistics.median(r[index] for r in results[name]), 4)
            for name in ("off", "on")
            for index, field in enumerate(
                ("lateness_p50_ms", "lateness_p99_ms", "record_p50_ms", "cpu_per_request_ms")
            )
        },
        "added_p50_ms": round(statistics.median(a[0] - b[0] + a[2] - b[2] for a, b in pairs), 4),
        "added_p99_ms": round(statistics.median(a[1] - b[1] for a, b in pairs), 4),
        "added_cpu_per_request_ms": round(statistics.median(a[3] - b[3] for a, b in pairs), 4),
        "rows_written": written,
    }


def writer_cost(batches: int, batch: int, folder: Path) -> dict[str, object]:
    """The writer's work per row, on one thread: making the row, the quota tally, the insert;
    and the `Entry` the event loop makes per request."""
    store = Store(folder / "ledger.sqlite3")
    tally = QuotaTally(DailyLimits({}))
    parts: dict[str, list[float]] = {"row_us": [], "tally_us": [], "insert_us": []}
    for _ in range(batches):
        entries = [_answered(index, ANSWER) for index in range(batch)]
        started = time.process_time()
        rows = [row(entry) for entry in entries]
        made = time.process_time()
        tally.ledger_rows(rows)
        counted = time.process_time()
        store.insert(rows)
        written = time.process_time()
        for name, seconds in zip(parts, (made - started, counted - made, written - counted), strict=True):
            parts[name].append(seconds / batch * 1e6)
    store.close()
    entry_us = min(timeit.repeat(lambda: _answered(0, ANSWER), number=20_000, repeat=5)) / 20_000 * 1e6
    medians = {name: round(statistics.median(values[5:]), 2) for name, values in parts.items()}
    return {
        "batches": batches,
        "rows_per_batch": batch,
        **medians,
        "writer_us_per_row": round(sum(medians.values()), 2),
        "entry_us": round(entry_us, 2),
    }


def main() -> None:
    parser = command_line(__doc__)
    parser.add_argument("--requests", type=int, default=4000, help="per coordinator and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8, help="concurrent closed-loop clients")
    parser.add_argument("--path", action="store_true", help="measure the request path at a fixed rate")
    parser.add_argument("--writer", action="store_true", help="the writer's CPU per row, on one thread")
    parser.add_argument(
        "--open-loop",
        action="store_true",
        help="end to end at a fixed rate (--rate), not closed-loop clients",
    )
    parser.add_argument(
        "--a-a", action="store_true", help="--open-loop: both coordinators without the ledger (an A/A run)"
    )
    parser.add_argument("--rate", type=int, default=1000, help="--path, --open-loop: requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="--path, --open-loop: per round")
    options = parser.parse_args()
    report: dict[str, object] = dict(machine())
    with tempfile.TemporaryDirectory(prefix="coordinator-bench-ledger-") as tmp:
        if options.writer:
            report["ledger_writer"] = writer_cost(40, 500, Path(tmp))
        elif options.path:
            report["ledger_path"] = path_cost(options.rate, options.seconds, options.rounds, Path(tmp))
        elif options.open_loop:
            report["ledger_open_loop"] = open_compare(
                options.children, options.rate, options.seconds, options.rounds, Path(tmp), options.a_a
            )
        else:
            report["ledger"] = compare(
                options.children, options.requests, options.rounds, options.clients, Path(tmp)
            )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
