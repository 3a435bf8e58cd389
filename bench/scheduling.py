"""How the coordinator schedules: saturation, queue wait, FIFO order, and failover.

    .venv/bin/python bench/scheduling.py [--children 2] [--seconds 10] [--trials 5]

1. Saturation: MOCK_FIRST_TOKEN_MS=100 and 4N clients (N = children) sending back to back
   through the coordinator. Busy share: the children's serving time, summed from the
   `request_finished` lines of their logs, over children x wall time. Queue wait: the
   `coordinator_queue_wait_seconds` histogram of /metrics, before and after, and each
   request's own wait (its latency at the client minus the child's duration for it, joined
   by X-Request-ID). Fairness: how the requests and the waits spread over the clients.
2. FIFO: with 1 child, then N, requests sent 10 ms apart (each on its own connection,
   opened beforehand, with an increasing X-Request-ID), more than the children can serve.
   From the children's logs, each request's service start (finish time minus duration):
   every request must start no earlier than the ones that arrived before it.
3. Failover: 2 children, MOCK_FIRST_TOKEN_MS=1000. A request goes in; once a child is busy
   with it, that child gets SIGKILL. Timed from the kill: the client's 200 answer (from the
   other child, checked by X-Coordinator-Child), minus that child's own service time; and
   the killed child back "ready" in GET /admin/children (polled every 20 ms), with the
   restart backoff and the new process's start read from the coordinator's log. Each trial
   runs a fresh coordinator with the default restart backoff (1 s base, times a jitter in
   [0.5, 1]), so every kill is a first failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BODY,
    command_line,
    coordinator,
    exchange,
    finished_requests,
    load,
    machine,
    percentile,
    request_bytes,
)

WAIT = "coordinator_queue_wait_seconds"


def epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def histogram(metrics: str, name: str) -> dict[str, float]:
    """The cumulative buckets of a histogram, plus its _sum and _count."""
    values: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith(f"{name}_bucket"):
            values[line.split('le="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
        elif line.startswith((f"{name}_sum ", f"{name}_count ")):
            values[line.split(" ")[0][len(name) + 1 :]] = float(line.rsplit(" ", 1)[1])
    return values


def spread(values: list[float], scale: float = 1000.0, digits: int = 1) -> dict[str, float]:
    return {
        "min": round(min(values) * scale, digits),
        "p50": round(percentile(values, 0.5) * scale, digits),
        "p90": round(percentile(values, 0.9) * scale, digits),
        "p99": round(percentile(values, 0.99) * scale, digits),
        "max": round(max(values) * scale, digits),
    }


# -- 1. saturation and queue wait --------------------------------------------------------


def saturation(children: int, seconds: float, first_token_ms: int, folder: Path) -> dict[str, Any]:
    clients = 4 * children
    cycle = clients * first_token_ms / 1000 / children  # one client's turn comes round this often
    per_client = max(2, int(seconds / cycle))
    with coordinator(children, {"MOCK_FIRST_TOKEN_MS": str(first_token_ms)}, folder) as run:
        before = histogram(run.metrics(), WAIT)
        started = time.time()
        tally = asyncio.run(load([run.port], BODY, "", clients, clients * per_client, ids="sat", strict=True))
        wall = time.time() - started
        after = histogram(run.metrics(), WAIT)
    events = {e["request_id"]: e for e in finished_requests(folder / "logs", "bench-*.log")}
    ours = [events[rid] for rid in tally.finished]
    serving = sum(e["duration_ms"] for e in ours) / 1000
    # A request's wait: its whole time at the client minus the child's time for it.
    waits = {rid: latency - events[rid]["duration_ms"] / 1000 for rid, latency in tally.finished.items()}
    per_client_waits = {
        i: [w for rid, w in waits.items() if rid.startswith(f"sat{i}-")] for i in range(clients)
    }
    per_child = {f"bench-{i}": sum(1 for e in ours if e["child"] == f"bench-{i}") for i in range(children)}
    buckets = [k for k in after if k not in ("sum", "count")]
    delta = {k: after[k] - before.get(k, 0.0) for k in [*buckets, "sum", "count"]}
    non_cumulative: dict[str, int] = {}
    previous = 0.0
    for bound in buckets:
        label = f"<= {bound} s" if bound != "+Inf" else "more"
        non_cumulative[label] = int(delta[bound] - previous)
        previous = delta[bound]
    return {
        "children": children,
        "clients": clients,
        "first_token_ms": first_token_ms,
        "wall_seconds": round(wall, 2),
        "requests": len(ours),
        "ideal_requests": int(children * wall / (first_token_ms / 1000)),
        "busy_share": round(serving / (children * wall), 4),
        "served_per_child": per_child,
        "child_service_ms": spread([e["duration_ms"] / 1000 for e in ours]),
        "queue_wait_metrics": {
            "observed": int(delta["count"]),
            "mean_ms": round(delta["sum"] / delta["count"] * 1000, 1) if delta["count"] else None,
            "buckets": non_cumulative,
        },
        "queue_wait_per_request_ms": spread(list(waits.values())),
        "expected_wait_ms": round((clients - children) * first_token_ms / children, 1),
        "fairness": {
            "requests_per_client": per_client,
            "median_wait_per_client_ms": {
                "lowest": round(min(statistics.median(w) for w in per_client_waits.values()) * 1000, 1),
                "highest": round(max(statistics.median(w) for w in per_client_waits.values()) * 1000, 1),
            },
        },
    }


# -- 2. FIFO -----------------------------------------------------------------------------


async def arrivals(port: int, count: int, spacing: float, prefix: str) -> dict[str, float]:
    """`count` requests, `spacing` seconds apart, each on a connection opened beforehand."""
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]
    sent: dict[str, float] = {}

    async def one(n: int) -> int:
        reader, writer = connections[n]
        request_id = f"{prefix}-{n:03d}"
        sent[request_id] = time.time()
        status, _, _ = await exchange(reader, writer, request_bytes(BODY, f"X-Request-ID: {request_id}\r\n"))
        writer.close()
        return status

    tasks = []
    start = time.perf_counter()
    for n in range(count):
        await asyncio.sleep(max(0.0, start + n * spacing - time.perf_counter()))
        tasks.append(asyncio.create_task(one(n)))
    statuses = await asyncio.gather(*tasks)
    if any(s != 200 for s in statuses):
        raise RuntimeError(f"FIFO run: not all answers were 200: {statuses}")
    return sent


def fifo(children: int, count: int, spacing_ms: int, first_token_ms: int, folder: Path) -> dict[str, Any]:
    prefix = f"fifo{children}"
    with coordinator(children, {"MOCK_FIRST_TOKEN_MS": str(first_token_ms)}, folder) as run:
        sent = asyncio.run(arrivals(run.port, count, spacing_ms / 1000, prefix))
    events = [e for e in finished_requests(folder / "logs", "bench-*.log") if e["request_id"] in sent]
    arrival_order = sorted(sent, key=lambda rid: sent[rid])
    # duration_ms is whole milliseconds and the timestamp microseconds: start within ~1 ms.
    starts = {e["request_id"]: epoch(e["timestamp"]) - e["duration_ms"] / 1000 for e in events}
    served = {e["request_id"]: e["child"] for e in events}
    tolerance = 0.002
    overtaken = [
        (earlier, later)
        for i, earlier in enumerate(arrival_order)
        for later in arrival_order[i + 1 :]
        if starts[later] < starts[earlier] - tolerance
    ]
    by_finish = [e["request_id"] for e in sorted(events, key=lambda e: epoch(e["timestamp"]))]
    waits = [starts[rid] - sent[rid] for rid in arrival_order]
    return {
        "children": children,
        "requests": count,
        "spacing_ms": spacing_ms,
        "first_token_ms": first_token_ms,
        "served": len(events),
        "served_per_child": {c: list(served.values()).count(c) for c in sorted(set(served.values()))},
        "start_order_is_arrival_order": sorted(arrival_order, key=lambda rid: starts[rid]) == arrival_order,
        "finish_order_is_arrival_order": by_finish == arrival_order,
        "overtaken_pairs": len(overtaken),
        "overtaken_examples": overtaken[:5],
        "wait_of_last_ms": round(waits[-1] * 1000, 1),
        "wait_ms": spread(waits),
    }


# -- 3. failover -------------------------------------------------------------------------

_RESTART_IN = re.compile(r"restarting in ([\d.]+)s")


def failover_trial(trial: int, first_token_ms: int, folder: Path) -> dict[str, Any]:
    with coordinator(2, {"MOCK_FIRST_TOKEN_MS": str(first_token_ms)}, folder) as run:
        request_id = f"failover-{trial}"
        answer: dict[str, Any] = {}
        asker = httpx.Client(base_url=run.url, timeout=60)
        asker.get("/live")  # the connection is open before the clock starts

        def ask() -> None:
            response = asker.post(
                "/v1/chat/completions",
                content=BODY,
                headers={"X-Request-ID": request_id, "Content-Type": "application/json"},
            )
            answer["at"] = time.perf_counter()
            answer["status"] = response.status_code
            answer["child"] = response.headers.get("x-coordinator-child")

        thread = threading.Thread(target=ask)
        thread.start()
        victim: dict[str, Any] | None = None
        deadline = time.monotonic() + 10
        while victim is None and time.monotonic() < deadline:
            victim = next((c for c in run.children() if c["request_id"] == request_id and c["pid"]), None)
            if victim is None:
                time.sleep(0.005)
        if victim is None:
            raise RuntimeError("no child took the request")
        os.kill(victim["pid"], signal.SIGKILL)
        killed_at, killed_epoch = time.perf_counter(), time.time()
        ready_at: float | None = None
        while time.perf_counter() - killed_at < 30:
            child = next(c for c in run.children() if c["id"] == victim["id"])
            if child["state"] == "ready" and child["pid"] != victim["pid"]:
                ready_at = time.perf_counter()
                break
            time.sleep(0.02)
        thread.join(60)
        asker.close()
        log = [
            json.loads(line)
            for line in (folder / "coordinator.log").read_text().splitlines()
            if line[:1] == "{"
        ]
    if ready_at is None:
        raise RuntimeError(f"{victim['id']} did not come back within 30 s")
    if answer.get("status") != 200 or answer.get("child") == victim["id"]:
        raise RuntimeError(f"the request was not served elsewhere: {answer}")
    served = next(
        e for e in finished_requests(folder / "logs", "bench-*.log") if e["request_id"] == request_id
    )
    # The coordinator's own account: the retry, the exit seen (with the backoff it chose), the
    # new process started, and ready again.
    mine = [e for e in log if e.get("child") == victim["id"] and epoch(e["timestamp"]) >= killed_epoch - 0.01]

    def after_kill(event: dict[str, Any] | None) -> float | None:
        return round((epoch(event["timestamp"]) - killed_epoch) * 1000, 1) if event else None

    retry = next(
        (e for e in log if e["event"] == "request_retry" and e.get("request_id") == request_id), None
    )
    exited = next((e for e in mine if e.get("new") == "backoff"), None)
    backoff = _RESTART_IN.search(exited["reason"]) if exited else None
    spawned = next((e for e in mine if e.get("new") == "starting"), None)
    ready = next((e for e in mine if e.get("new") == "ready"), None)
    other_start = epoch(served["timestamp"]) - served["duration_ms"] / 1000
    logged = next(e for e in log if e["event"] == "request" and e.get("request_id") == request_id)
    own = [
        json.loads(line)
        for line in (folder / "logs" / f"{victim['id']}.log").read_text().splitlines()
        if line[:1] == "{"
    ]
    child_ready = next(
        (e for e in own if e["event"] == "child_ready" and epoch(e["timestamp"]) >= killed_epoch), None
    )
    to_answer = answer["at"] - killed_at
    return {
        "killed": victim["id"],
        "served_by": answer["child"],
        "kill_to_answer_ms": round(to_answer * 1000, 1),
        "other_child_service_ms": served["duration_ms"],
        "failover_ms": round(to_answer * 1000 - served["duration_ms"], 1),
        # The same, to the coordinator's log line for the answer: without the client's own delay.
        "failover_in_coordinator_ms": round((after_kill(logged) or 0) - served["duration_ms"], 1),
        "kill_to_ready_ms": round((ready_at - killed_at) * 1000, 1),
        "retry_after_kill_ms": after_kill(retry),
        "other_child_start_after_kill_ms": round((other_start - killed_epoch) * 1000, 1),
        "exit_seen_after_kill_ms": after_kill(exited),
        "backoff_ms": round(float(backoff.group(1)) * 1000) if backoff else None,
        "spawn_after_kill_ms": after_kill(spawned),
        # The new process says it is ready; the coordinator probes a starting child every 0.2 s.
        "child_says_ready_after_kill_ms": after_kill(child_ready),
        "start_to_ready_ms": round((after_kill(ready) or 0) - (after_kill(spawned) or 0), 1)
        if ready and spawned
        else None,
    }


def failover(trials: int, first_token_ms: int, folder: Path) -> dict[str, Any]:
    results = [failover_trial(i, first_token_ms, folder / f"trial-{i}") for i in range(trials)]

    def stats(key: str) -> dict[str, float] | None:
        values = [r[key] for r in results if r[key] is not None]
        if not values:
            return None
        return {"median": round(statistics.median(values), 1), "max": round(max(values), 1)}

    return {
        "children": 2,
        "first_token_ms": first_token_ms,
        "restart_backoff": "default: 1 s base, times a jitter in [0.5, 1] for a first failure",
        "trials": results,
        **{
            key: stats(key)
            for key in (
                "failover_ms",
                "failover_in_coordinator_ms",
                "kill_to_answer_ms",
                "retry_after_kill_ms",
                "other_child_start_after_kill_ms",
                "kill_to_ready_ms",
                "exit_seen_after_kill_ms",
                "backoff_ms",
                "spawn_after_kill_ms",
                "child_says_ready_after_kill_ms",
                "start_to_ready_ms",
            )
        },
    }


def main() -> None:
    parser = command_line(__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the saturation run")
    parser.add_argument("--first-token-ms", type=int, default=100, help="the mock's delay under saturation")
    parser.add_argument("--fifo-requests", type=int, default=40)
    parser.add_argument("--fifo-spacing-ms", type=int, default=10)
    parser.add_argument("--trials", type=int, default=5, help="failover trials")
    parser.add_argument("--only", choices=("saturation", "fifo", "failover"), action="append")
    options = parser.parse_args()
    parts = options.only or ["saturation", "fifo", "failover"]
    report: dict[str, Any] = dict(machine())
    with tempfile.TemporaryDirectory(prefix="coordinator-bench-") as tmp:
        folder = Path(tmp)
        if "saturation" in parts:
            report["saturation"] = saturation(
                options.children, options.seconds, options.first_token_ms, folder / "saturation"
            )
        if "fifo" in parts:
            report["fifo"] = [
                fifo(
                    n,
                    options.fifo_requests,
                    options.fifo_spacing_ms,
                    options.first_token_ms,
                    folder / f"fifo-{n}",
                )
                for n in sorted({1, options.children})
            ]
        if "failover" in parts:
            report["failover"] = failover(options.trials, 1000, folder / "failover")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
