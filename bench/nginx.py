"""The coordinator next to nginx: the same mock children called directly, behind nginx, and
behind the coordinator, in one run.

    .venv/bin/python bench/nginx.py [--children 2] [--requests 2000] [--rounds 5]

Needs nginx (Debian's package: `apt-get install -y nginx`). nginx runs in the foreground as
a child of this script, on a free local port, as a plain reverse proxy: one `upstream` with
each child as `server 127.0.0.1:PORT max_conns=1`, keep-alive connections to the children,
HTTP/1.1, no buffering (for SSE), and the children's token set on every request. With
`max_conns` and no `queue` (an nginx Plus directive), open-source nginx answers 502 at once
when every child is busy: those are counted, not hidden.

For 1, N and 4N concurrent clients (N = children), stream and non-stream, each target gets
`--requests` requests after a warm-up, rounds interleaved (direct, nginx, coordinator, then
the next row) so that a change in the machine's load hits all three alike:
- direct: clients spread round-robin over the children with their token; at 4N several
  clients share a child, which answers 429 child_busy to the one that comes second;
- nginx and coordinator: every client on the proxy's port.

Reported per row: p50/p99 of the 200 answers and 200 answers per second (medians over
rounds), every other status counted, the proxy's and the children's CPU time per request,
how often per request the kernel took a core away from the proxy (involuntary context
switches), and the coordinator's figures as ratios to nginx's. With --py-spy, the
coordinator is then sampled with py-spy at N clients, and the samples are shared out by
where they fell (the event loop, its HTTP server, logging, its own files...).

"Added" latency is a proxy's percentile minus direct's, in the same round, at 1 and N
clients (at 4N direct is not a baseline: its clients collide).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BODY,
    STREAM_BODY,
    Tally,
    command_line,
    coordinator,
    direct_children,
    free_port,
    load,
    machine,
    percentile,
    spawn,
    stop_process_group,
    wait_until,
)

NGINX_MISSING = """nginx is not installed. This benchmark runs Debian's nginx as the reference proxy:

    apt-get install -y nginx        # as root (apt-get update first on a fresh machine)

The package's own service is not needed: the script starts nginx itself, in the foreground,
with a generated configuration on a free local port."""

CONF = """\
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
    upstream children {{
        zone children 64k;
{servers}
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://children;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Child-Token {token};
            proxy_buffering off;
        }}
    }}
}}
"""


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


@contextmanager
def nginx(
    binary: str, ports: list[int], token: str, workers: int
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """nginx in the foreground on a free port, in front of `ports`; yields (process, port)."""
    prefix = Path(tempfile.mkdtemp(prefix="coordinator-bench-nginx-"))
    prefix.chmod(0o755)  # nginx's workers run as nobody when we are root
    port = free_port()
    servers = "\n".join(f"        server 127.0.0.1:{p} max_conns=1;" for p in ports)
    conf = prefix / "nginx.conf"
    conf.write_text(CONF.format(workers=workers, prefix=prefix, servers=servers, port=port, token=token))
    argv = [binary, "-c", str(conf), "-p", str(prefix), "-e", str(prefix / "error.log"), "-g", "daemon off;"]
    process = spawn(argv, {}, prefix / "stderr.log")
    try:
        try:
            wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200, 10, "nginx")
        except RuntimeError:
            log = (prefix / "error.log").read_text() + (prefix / "stderr.log").read_text()
            raise RuntimeError(f"nginx did not start: {log[-2000:]}") from None
        yield process, port
    finally:
        stop_process_group(process, timeout=15)
        shutil.rmtree(prefix, ignore_errors=True)


CATEGORIES = (
    ("coordinator/transport.py", "coordinator: link to the children (transport.py)"),
    ("coordinator/http.py", "coordinator: its HTTP server (http.py)"),
    ("coordinator/", "coordinator: its own code, other files"),
    ("structlog/", "logging (structlog, orjson)"),
    ("json/", "json (request bodies, error bodies)"),
    ("prometheus_client/", "metrics (prometheus_client)"),
    ("asyncio/runners.py", "event loop in C (uvloop, httptools, syscalls)"),
    ("asyncio/", "asyncio (Python parts)"),
)


def profile(pid: int, port: int, body: bytes, clients: int, seconds: float, output: Path) -> dict[str, Any]:
    """Sample the coordinator with py-spy while `clients` clients load it; shares by where."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    argv = [spy, "record", "--pid", str(pid), "--rate", "500", "--nonblocking", "--format", "raw"]
    process = spawn([*argv, "--output", str(output), "--duration", str(int(seconds) + 1)], {})
    time.sleep(0.5)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        asyncio.run(load([port], body, "", clients, 500))
    process.wait(60)
    if not output.exists():
        raise RuntimeError("py-spy wrote nothing: it needs ptrace (root or CAP_SYS_PTRACE)")
    shares: dict[str, int] = {}
    lines: dict[str, int] = {}
    total = 0
    for line in output.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        leaf = stack.rsplit(";", 1)[-1]
        total += int(count)
        where = next((name for key, name in CATEGORIES if key in leaf), "other")
        shares[where] = shares.get(where, 0) + int(count)
        lines[leaf] = lines.get(leaf, 0) + int(count)
    return {
        "samples": total,
        "note": "py-spy counts a thread that is runnable but waiting for a core as busy",
        "by_where": {k: round(v / total, 3) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])},
        "top_lines": {k: round(v / total, 3) for k, v in sorted(lines.items(), key=lambda kv: -kv[1])[:8]},
    }


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def preemptions(processes: list[psutil.Process]) -> int:
    """Involuntary context switches: how often the kernel took a core away from them."""
    total = 0
    for process in processes:
        try:
            total += process.num_ctx_switches().involuntary
        except psutil.NoSuchProcess:
            continue
    return total


def measure(
    ports: list[int], body: bytes, headers: str, clients: int, requests: int, watched: dict[str, list[int]]
) -> tuple[Tally, dict[str, float]]:
    """One measured run, with the CPU seconds each group of `watched` processes spent in it
    (and, as "<group> preempted", how many times the kernel took a core away from it)."""
    groups = {name: [psutil.Process(pid) for pid in pids] for name, pids in watched.items()}
    before = {name: cpu_seconds(group) for name, group in groups.items()}
    switches = {name: preemptions(group) for name, group in groups.items()}
    before_self = time.process_time()
    tally = asyncio.run(load(ports, body, headers, clients, requests))
    cpu = {name: cpu_seconds(group) - before[name] for name, group in groups.items()}
    cpu["load generator"] = time.process_time() - before_self
    for name, group in groups.items():
        cpu[f"{name} preempted"] = preemptions(group) - switches[name]
    return tally, cpu


MEDIANS = (
    "p50_ms", "p99_ms", "ok_per_s", "proxy_cpu_us", "children_cpu_us", "loadgen_cpu_us",
    "proxy_preempted_per_request",
)  # fmt: skip


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds of one (mode, clients, target) row, and the failures summed."""
    statuses: dict[str, int] = {}
    codes: dict[str, int] = {}
    for run in runs:
        for status, count in run["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
        for code, count in run["codes"].items():
            codes[code] = codes.get(code, 0) + count
    sent = sum(statuses.values())
    row: dict[str, Any] = {
        key: round(statistics.median(run[key] for run in runs), 3)
        for key in MEDIANS
        if all(run.get(key) is not None for run in runs)
    }
    row["p50_ms_rounds"] = [run["p50_ms"] for run in runs]
    row["p99_ms_rounds"] = [run["p99_ms"] for run in runs]
    row["sent"] = sent
    row["failed"] = sent - statuses.get("200", 0)
    row["failed_share"] = round(row["failed"] / sent, 4) if sent else 0.0
    row["statuses"] = statuses
    if codes:
        row["codes"] = codes
    return row


def one_run(
    ports: list[int], body: bytes, headers: str, clients: int, requests: int, watched: dict[str, list[int]]
) -> dict[str, Any]:
    tally, cpu = measure(ports, body, headers, clients, requests, watched)
    sent = sum(tally.statuses.values())
    ms = {
        q: round(percentile(tally.latencies, q) * 1000, 3) if tally.latencies else None for q in (0.5, 0.99)
    }
    per_request = {name: round(seconds / sent * 1e6, 1) for name, seconds in cpu.items()}
    return {
        "p50_ms": ms[0.5],
        "p99_ms": ms[0.99],
        "ok_per_s": round(tally.ok / tally.wall, 1),
        "statuses": {str(k): v for k, v in tally.statuses.items()},
        "codes": tally.codes,
        "loadgen_cpu_us": per_request["load generator"],
        "children_cpu_us": per_request["children"],
        "proxy_cpu_us": per_request.get("proxy"),
        "proxy_preempted_per_request": round(cpu["proxy preempted"] / sent, 3) if "proxy" in cpu else None,
    }


def compare(
    runs: dict[tuple[str, int, str], list[dict[str, Any]]], mode: str, clients: int, n: int
) -> dict[str, Any]:
    """One row: each target's medians, the added latency at 1 and N clients, and the ratios."""
    row = {target: summary(runs[(mode, clients, target)]) for target in ("direct", "nginx", "coordinator")}
    if clients <= n:
        for target in ("nginx", "coordinator"):
            for q in ("p50", "p99"):
                pairs = zip(runs[(mode, clients, target)], runs[(mode, clients, "direct")], strict=True)
                added = [proxied[f"{q}_ms"] - direct[f"{q}_ms"] for proxied, direct in pairs]
                row[target][f"added_{q}_ms"] = round(statistics.median(added), 3)
    ours, theirs = row["coordinator"], row["nginx"]
    ratios: dict[str, Any] = {}
    for key in ("p50_ms", "p99_ms", "ok_per_s", "proxy_cpu_us", "added_p50_ms", "added_p99_ms"):
        # A ratio of two differences is only meaningful when nginx's is clearly above zero.
        floor = 0.05 if key.startswith("added") else 0.0
        if key in ours and (theirs.get(key) or 0) > floor:
            ratios[key] = round(ours[key] / theirs[key], 2)
    row["coordinator_to_nginx"] = ratios
    return row


def main() -> None:
    parser = command_line(__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="requests per target and row, per round")
    parser.add_argument("--warmup", type=int, default=100, help="requests before each measured run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--nginx-workers", type=int, default=1, help="worker_processes (default 1)")
    parser.add_argument("--py-spy", action="store_true", help="then sample the coordinator with py-spy")
    options = parser.parse_args()
    binary = find_nginx()
    if binary is None:
        print(NGINX_MISSING, file=sys.stderr)
        raise SystemExit(2)
    n = options.children
    concurrencies = sorted({1, n, 4 * n})
    modes = (("non-stream", BODY), ("stream", STREAM_BODY))
    version = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr.strip()
    report: dict[str, Any] = {
        **machine(),
        "nginx": f"{version}, worker_processes {options.nginx_workers}",
        "children": n,
        "requests_per_row": options.requests,
        "rounds": options.rounds,
    }
    runs: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="coordinator-bench-") as tmp:
        folder = Path(tmp)
        with (
            direct_children(n, {}, folder) as (ports, token),
            nginx(binary, ports, token, options.nginx_workers) as (proxy, nginx_port),
            coordinator(n, {}, folder / "coordinator") as run,
        ):
            ours = run.process.pid
            nginx_pids = [proxy.pid, *(c.pid for c in psutil.Process(proxy.pid).children())]
            children = [c.pid for c in psutil.Process().children() if c.pid not in (proxy.pid, ours)]
            targets = {
                "direct": (ports, f"X-Child-Token: {token}\r\n", {"children": children}),
                "nginx": ([nginx_port], "", {"proxy": nginx_pids, "children": children}),
                "coordinator": (
                    [run.port],
                    "",
                    {"proxy": [ours], "children": [c.pid for c in psutil.Process(ours).children()]},
                ),
            }
            for round_ in range(options.rounds):
                for mode, body in modes:
                    for clients in concurrencies:
                        for target, (to, headers, watched) in targets.items():
                            asyncio.run(load(to, body, headers, clients, options.warmup))
                            record = one_run(to, body, headers, clients, options.requests, watched)
                            runs.setdefault((mode, clients, target), []).append(record)
                load_now = os.getloadavg()[0]
                print(f"round {round_ + 1}/{options.rounds} done, load {load_now:.2f}", file=sys.stderr)
            if options.py_spy:
                report["coordinator_profile"] = {
                    f"{mode}, {n} clients": profile(
                        ours, run.port, body, n, 8.0, folder / f"py-spy-{mode}.txt"
                    )
                    for mode, body in modes
                }
    report["load_average_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    report["rows"] = {
        f"{mode}, {clients} clients": compare(runs, mode, clients, n)
        for mode, _ in modes
        for clients in concurrencies
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
