"""Three hosts of four mock children behind HAProxy (deploy/haproxy/haproxy.cfg), on this
machine, each host a network namespace with its own address and coordinator
(tests/support/hosts.py, the topology of tests/deploy/test_hosts.py).

    .venv/bin/python bench/hosts.py [--hosts 3] [--children 4] [--seconds 8]

Needs root, `ip` and haproxy (`scripts/setup.sh dev` installs it as root). Reports:
- requests per second through HAProxy for all hosts, next to one host called directly,
  at four clients per child (mock children answering at once: the cost of the path);
- the latency HAProxy adds: one client, p50 and p99, one host directly vs through HAProxy
  (which then picks among all hosts), rounds interleaved;
- FIFO across hosts: requests sent 15 ms apart, faster than the children answer (about
  0.3 s each), so most wait in HAProxy's queue; each one's start is read from the log of
  the coordinator that served it (its log time minus its duration), and the pairs started
  out of arrival order are counted;
- the requests lost when one host is killed (SIGKILL to every process in it) under a steady
  load of twice as many clients as children, next to the number of children it had.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BODY, command_line, exchange, machine, percentile, request_bytes

from tests.support.hosts import (
    HAProxy,
    Hosts,
    host_profiles_args,
    why_no_hosts,
    write_profiles,
)
from tests.support.steady_load import SteadyLoad

FAST: dict[str, str] = {}
# About 0.3 s an answer: the first token after 100 ms, then ten tokens 20 ms apart.
PACED = {"MOCK_FIRST_TOKEN_MS": "100", "MOCK_TOKEN_MS": "20"}


class Topology:
    """Hosts with their coordinators, and HAProxy in front; `close` removes it all."""

    def __init__(self, work: Path, hosts: int, children: int, env: dict[str, str]) -> None:
        self.hosts = Hosts(work, hosts, env=env)
        self.proxy: HAProxy | None = None
        self.work = work
        self.count = hosts
        self.children = children

    def __enter__(self) -> Topology:
        try:
            self.hosts.create()
            shared = self.work / "profiles"
            write_profiles(shared, self.count * self.children, shards=self.count)
            self.args = [host_profiles_args(i, self.count, shared) for i in range(self.count)]
            for i in range(self.count):
                self.hosts.start(i, self.args[i], wait_ready=False)
            for i in range(self.count):
                self.hosts.wait_ready(i, timeout=90)
            self.live = {i: set(self.hosts.hosts[i].children()) for i in range(self.count)}
            servers = [(h.name, f"{h.address}:2048", len(self.live[h.index])) for h in self.hosts.hosts]
            self.proxy = HAProxy(self.work / "haproxy", servers)
            self.proxy.start()
            self.proxy.wait_states({h.name: "UP" for h in self.hosts.hosts})
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
        self.hosts.close()


async def timed_client(
    address: str, port: int, body: bytes, until: float, latencies: list[float], ids: str = ""
) -> int:
    """Requests back to back on one keep-alive connection until `until`; how many were not 200."""
    reader, writer = await asyncio.open_connection(address, port)
    failures = 0
    n = 0
    try:
        while time.monotonic() < until:
            n += 1
            headers = f"X-Request-ID: {ids}{n}\r\n" if ids else ""
            started = time.perf_counter()
            status, _, keep = await exchange(reader, writer, request_bytes(body, headers))
            if status == 200:
                latencies.append(time.perf_counter() - started)
            else:
                failures += 1
            if not keep:
                writer.close()
                reader, writer = await asyncio.open_connection(address, port)
    finally:
        writer.close()
    return failures


async def throughput(address: str, port: int, clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    until = time.monotonic() + seconds
    started = time.perf_counter()
    failures = await asyncio.gather(
        *(timed_client(address, port, BODY, until, latencies) for _ in range(clients))
    )
    wall = time.perf_counter() - started
    return {"rps": round(len(latencies) / wall, 1), "failures": sum(failures), "requests": len(latencies)}


def measure_fast(topology: Topology, seconds: float) -> dict[str, Any]:
    proxy = topology.proxy
    assert proxy is not None
    one = topology.hosts.hosts[0]
    direct = (one.address, 2048)
    through = ("127.0.0.1", proxy.port)
    children_one = len(topology.live[0])
    children_all = sum(len(share) for share in topology.live.values())
    # Latency: one client, interleaved rounds.
    lat: dict[str, list[float]] = {"direct": [], "haproxy": []}
    for _ in range(3):
        for name, (address, port) in (("direct", direct), ("haproxy", through)):
            samples: list[float] = []
            asyncio.run(timed_client(address, port, BODY, time.monotonic() + seconds / 4, samples))
            lat[name].extend(samples)
    ms = {name: {q: percentile(v, q) * 1000 for q in (0.5, 0.99)} for name, v in lat.items()}
    latency: dict[str, Any] = {
        name: {"p50_ms": round(m[0.5], 2), "p99_ms": round(m[0.99], 2), "samples": len(lat[name])}
        for name, m in ms.items()
    }
    latency["added_p50_ms"] = round(ms["haproxy"][0.5] - ms["direct"][0.5], 2)
    latency["added_p99_ms"] = round(ms["haproxy"][0.99] - ms["direct"][0.99], 2)
    # Throughput: four clients per child.
    rounds: dict[str, list[dict[str, Any]]] = {"direct_one_host": [], "haproxy_all_hosts": []}
    for _ in range(2):
        rounds["direct_one_host"].append(asyncio.run(throughput(*direct, 4 * children_one, seconds)))
        rounds["haproxy_all_hosts"].append(asyncio.run(throughput(*through, 4 * children_all, seconds)))
    rps = {
        name: {
            "clients": 4 * (children_one if name == "direct_one_host" else children_all),
            "rps_median": statistics.median(r["rps"] for r in runs),
            "failures": sum(r["failures"] for r in runs),
        }
        for name, runs in rounds.items()
    }
    return {"latency_one_client": latency, "throughput": rps}


async def fifo_run(port: int, count: int, gap: float) -> list[tuple[str, float, int]]:
    """`count` requests sent `gap` seconds apart, each on its own connection: (id, sent, status)."""

    async def one(k: int) -> tuple[str, float, int]:
        await asyncio.sleep(k * gap)
        request_id = f"fifo{k:04d}"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            sent = time.time()
            status, _, _ = await exchange(
                reader, writer, request_bytes(BODY, f"X-Request-ID: {request_id}\r\n")
            )
            return request_id, sent, status
        finally:
            writer.close()

    return await asyncio.gather(*(one(k) for k in range(count)))


def measure_fifo(topology: Topology, count: int = 90, gap: float = 0.015) -> dict[str, Any]:
    proxy = topology.proxy
    assert proxy is not None
    sent = asyncio.run(fifo_run(proxy.port, count, gap))
    started: dict[str, float] = {}
    for host in topology.hosts.hosts:
        for event in host.events("request"):
            if str(event.get("request_id", "")).startswith("fifo") and event.get("status") == 200:
                stamp = datetime.datetime.fromisoformat(event["timestamp"]).timestamp()
                started[event["request_id"]] = stamp - event["duration_ms"] / 1000
    order = [request_id for request_id, _, _ in sorted(sent, key=lambda s: s[1])]
    served = [request_id for request_id in order if request_id in started]
    starts = [started[request_id] for request_id in served]
    pairs = inversions = 0
    for i in range(len(starts)):
        for j in range(i + 1, len(starts)):
            pairs += 1
            inversions += starts[j] < starts[i]
    ranks = sorted(range(len(starts)), key=lambda k: starts[k])
    displacement = max((abs(rank - k) for k, rank in enumerate(ranks)), default=0)
    logged = proxy.requests()
    return {
        "requests": count,
        "served": len(served),
        "not_200": sum(1 for _, _, status in sent if status != 200),
        "pairs_started_out_of_order": inversions,
        "pairs": pairs,
        "largest_displacement": displacement,
        "waited_in_haproxy_queue": sum(1 for r in served if r in logged and logged[r].queued_ms > 0),
        "served_by_host": {
            name: sum(1 for r in served if r in logged and logged[r].server == name)
            for name in sorted({logged[r].server for r in served if r in logged})
        },
    }


def measure_kill(topology: Topology, clients: int, seconds: float) -> dict[str, Any]:
    proxy = topology.proxy
    assert proxy is not None
    load = SteadyLoad(proxy.url, clients, prefix="k")
    load.start()
    try:
        time.sleep(seconds / 2)
        victim = max(topology.live, key=lambda i: len(topology.live[i]))
        killed_at = time.time()
        topology.hosts.kill(victim)
        time.sleep(seconds / 2)
    finally:
        load.stop()
    outcomes = load.done()
    lost = [o for o in outcomes if not o.ok]
    logged = proxy.requests()
    return {
        "clients": clients,
        "children_of_killed_host": len(topology.live[victim]),
        "requests": len(outcomes),
        "lost": len(lost),
        "lost_sent_to_killed_host": sum(
            1
            for o in lost
            if o.request_id in logged and logged[o.request_id].server == topology.hosts.hosts[victim].name
        ),
        "streams_broken_mid_answer": sum(1 for o in lost if o.stream and o.started_answer),
        "served_after_kill": sum(1 for o in outcomes if o.ok and o.sent >= killed_at),
    }


def main() -> None:
    parser = command_line(__doc__, children=False)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--children", type=int, default=4, help="children per host (default 4)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each timed run")
    options = parser.parse_args()
    reason = why_no_hosts()
    if reason is not None:
        sys.exit(f"cannot make hosts as network namespaces here: {reason}")
    report: dict[str, Any] = {**machine(), "hosts": options.hosts, "children_per_host": options.children}
    with tempfile.TemporaryDirectory(prefix="coordinator-bench-hosts-") as work:
        with Topology(Path(work) / "fast", options.hosts, options.children, FAST) as topology:
            report.update(measure_fast(topology, options.seconds))
        with Topology(Path(work) / "paced", options.hosts, options.children, PACED) as topology:
            report["fifo"] = measure_fifo(topology)
            report["kill"] = measure_kill(topology, 2 * options.hosts * options.children, options.seconds)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
