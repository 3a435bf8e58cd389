"""Throughput of this tree against another checkout, on mock children: before and after a change.

    git worktree add /tmp/base <commit>     # or: git archive <commit> | tar -x -C /tmp/base
    .venv/bin/python bench/compare.py --base /tmp/base [--rounds 10] [--requests 3000] [--clients 8] [--child]

Two coordinators over two mock children each, one run from each source tree (PYTHONPATH
points the coordinator and its children at the tree; run the script from a folder that
holds neither, so that its working directory does not shadow them), loaded in
alternating rounds by the same closed-loop clients as bench/ledger.py (`--no-ledger`, so
that only the serving path is compared). Alternating rounds matter on a shared machine:
a change in its load hits both alike, where runs one after the other measure the load.
Reported per tree: requests per second, p50 and the CPU per request of the coordinator
and of its children (medians over rounds), and the median of the per-round ratio of
requests per second.

`--child`: one mock child from each tree instead, called directly by one client in
sequence (as a child is used: one request at a time), with its CPU per request split into
user and system time.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BODY, command_line, coordinator, direct_children, load, machine, percentile

from coordinator.protocol.link import TOKEN_HEADER


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


Round = tuple[float, ...]  # requests per second first, then the figures named by `fields`


def compare(
    trees: dict[str, Path], children: int, requests: int, rounds: int, clients: int, folder: Path
) -> dict[str, object]:
    fields = ("requests_per_second", "p50_ms", "coordinator_cpu_us", "children_cpu_us")
    with ExitStack() as stack:
        runs = {
            name: stack.enter_context(
                coordinator(children, {"PYTHONPATH": str(tree)}, folder / name, ["--no-ledger"])
            )
            for name, tree in trees.items()
        }

        def measure(name: str) -> Round:
            run = runs[name]
            parent = psutil.Process(run.process.pid)
            kids = parent.children(recursive=True)
            asyncio.run(load([run.port], BODY, "", clients, 500, strict=True))  # warm-up
            before = (_cpu_seconds(parent), sum(_cpu_seconds(kid) for kid in kids))
            tally = asyncio.run(load([run.port], BODY, "", clients, requests, strict=True))
            after = (_cpu_seconds(parent), sum(_cpu_seconds(kid) for kid in kids))
            count = len(tally.latencies)
            return (
                count / tally.wall,
                percentile(tally.latencies, 0.5) * 1000,
                (after[0] - before[0]) / count * 1e6,
                (after[1] - before[1]) / count * 1e6,
            )

        results = _alternate(rounds, measure)
    return {**_summary(results, fields), "requests_per_round": requests, "clients": clients, "rounds": rounds}


def compare_children(trees: dict[str, Path], requests: int, rounds: int, folder: Path) -> dict[str, object]:
    fields = ("requests_per_second", "p50_ms", "user_cpu_us", "system_cpu_us")
    with ExitStack() as stack:
        runs = {}
        for name, tree in trees.items():
            (folder / name).mkdir()
            (port,), token = stack.enter_context(direct_children(1, {"PYTHONPATH": str(tree)}, folder / name))
            runs[name] = (port, f"{TOKEN_HEADER}: {token}\r\n", _listener(port))

        def measure(name: str) -> Round:
            port, headers, process = runs[name]
            asyncio.run(load([port], BODY, headers, 1, 500, strict=True))  # warm-up
            before = process.cpu_times()
            tally = asyncio.run(load([port], BODY, headers, 1, requests, strict=True))
            after = process.cpu_times()
            count = len(tally.latencies)
            return (
                count / tally.wall,
                percentile(tally.latencies, 0.5) * 1000,
                (after.user - before.user) / count * 1e6,
                (after.system - before.system) / count * 1e6,
            )

        results = _alternate(rounds, measure)
    return {**_summary(results, fields), "requests_per_round": requests, "rounds": rounds}


def _alternate(rounds: int, measure: Callable[[str], Round]) -> dict[str, list[Round]]:
    """Each tree measured once a round: base first in even rounds, this tree first in odd
    ones, so that what a round's order costs is shared."""
    results: dict[str, list[Round]] = {"base": [], "this": []}
    for index in range(rounds):
        for name in ("base", "this") if index % 2 == 0 else ("this", "base"):
            results[name].append(measure(name))
    return results


def _summary(results: dict[str, list[Round]], fields: tuple[str, ...]) -> dict[str, object]:
    """Each figure's median over rounds, and the per-round ratio of requests per second."""
    ratios = [a[0] / b[0] for a, b in zip(results["this"], results["base"], strict=True)]
    return {
        **{
            f"{name}_{field}": round(statistics.median(r[index] for r in rounds), 1)
            for name, rounds in results.items()
            for index, field in enumerate(fields)
        },
        **{
            f"{name}_requests_per_second_rounds": [round(r[0]) for r in rounds]
            for name, rounds in results.items()
        },
        "ratio_requests_per_second": round(statistics.median(ratios), 3),
        "ratio_rounds": [round(x, 3) for x in ratios],
    }


def _listener(port: int) -> psutil.Process:
    """The child process of ours that listens on `port`."""
    for process in psutil.Process().children(recursive=True):
        if str(port) in process.cmdline():
            return process
    raise LookupError(f"no child of this process listens on {port}")


def main() -> None:
    parser = command_line(__doc__)
    parser.add_argument("--base", type=Path, required=True, help="the other checkout (its root folder)")
    parser.add_argument("--requests", type=int, default=3000, help="per coordinator and round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=8, help="concurrent closed-loop clients")
    parser.add_argument("--child", action="store_true", help="one mock child of each tree, called directly")
    options = parser.parse_args()
    here = Path(__file__).resolve().parents[1]
    if Path.cwd().resolve() in (here, options.base.resolve()):
        parser.error("run it from a folder that is neither tree (its modules would shadow PYTHONPATH)")
    trees = {"base": options.base.resolve(), "this": here}
    report: dict[str, object] = dict(machine())
    with tempfile.TemporaryDirectory(prefix="coordinator-bench-compare-") as tmp:
        if options.child:
            report["compare_child"] = compare_children(trees, options.requests, options.rounds, Path(tmp))
        else:
            report["compare"] = compare(
                trees, options.children, options.requests, options.rounds, options.clients, Path(tmp)
            )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
