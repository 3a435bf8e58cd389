"""How long the coordinator and its children take to start.

    .venv/bin/python bench/startup.py [--runs 10] [--ready-runs 5] [--no-bytecode]

1. Commands: each run as a new process `--runs` times; the medians of its wall time, its
   CPU time (user + system, steadier on a busy machine) and its peak resident memory. The
   imports of `run`, the light CLI commands (--help, status and usage against a closed
   port, profiles), the child's --help and its imports with the browser engine (up to
   launching the browser).
2. Ready: a coordinator with `--children` mock children (default 2), from spawning it to
   /ready counting them all serving, `--ready-runs` times (wall, and the CPU its process
   tree used so far); and one mock child alone, from spawning it to its /health
   answering 200.

The processes read and write their bytecode in a temporary PYTHONPYCACHEPREFIX, warmed by
one run first, as an installed package would (pip compiles at install). `--no-bytecode`
compiles every module at every start instead (PYTHONDONTWRITEBYTECODE=1 without a cache).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import EMPTY_PROFILE, command_line, coordinator, direct_children, machine

PY = sys.executable
# Ports nothing listens on: status and usage fail at once, after their imports.
CLOSED = "http://127.0.0.1:9"
COMMANDS: dict[str, list[str]] = {
    "run path: import coordinator.runtime + cli": [
        PY,
        "-c",
        "import coordinator.cli.main, coordinator.runtime",
    ],
    "coordinator --help": [PY, "-m", "coordinator", "--help"],
    "coordinator status (no answer)": [PY, "-m", "coordinator", "status", "--url", CLOSED, "--timeout", "1"],
    "coordinator usage (no answer)": [PY, "-m", "coordinator", "usage", "--url", CLOSED, "--timeout", "1"],
    "coordinator profiles DIR": [PY, "-m", "coordinator", "profiles", "{folder}"],
    "child --help": [PY, "-m", "child", "--help"],
    "child imports, browser engine": [PY, "-c", "import child.__main__, child.engines.browser"],
}


def timed(argv: Sequence[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak resident MB of one run of `argv` (its output
    dropped, its exit code ignored)."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(process.pid, 0)
    process.returncode = 0  # reaped here: Popen must not wait for it again
    wall = time.perf_counter() - start
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def commands(runs: int, env: dict[str, str], folder: Path) -> None:
    (folder / "active").mkdir(parents=True)
    (folder / "active" / "a.json").write_text(EMPTY_PROFILE)
    print(f"{'command':46} {'wall p50':>9} {'cpu p50':>9} {'peak RSS':>9}")
    for name, template in COMMANDS.items():
        argv = [part.replace("{folder}", str(folder)) for part in template]
        timed(argv, env)  # warms the bytecode cache and the file system's
        samples = [timed(argv, env) for _ in range(runs)]
        wall, cpu, rss = (statistics.median(s[i] for s in samples) for i in range(3))
        print(f"{name:46} {wall * 1000:7.0f}ms {cpu * 1000:7.0f}ms {rss:7.0f}MB")


def ready(children: int, runs: int, folder: Path) -> None:
    walls, cpus = [], []
    for i in range(runs):
        start = time.perf_counter()
        with coordinator(children, {}, folder / f"run-{i}") as run:
            walls.append(time.perf_counter() - start)
            cpus.append(_cpu_of_tree(run.process.pid))
    name = f"coordinator + {children} mock children to /ready"
    print(f"{name:46} {statistics.median(walls) * 1000:7.0f}ms {statistics.median(cpus) * 1000:7.0f}ms")
    alone = []
    for i in range(runs):
        (folder / f"child-{i}").mkdir()
        start = time.perf_counter()
        with direct_children(1, {}, folder / f"child-{i}"):
            alone.append(time.perf_counter() - start)
    print(f"{'one mock child to /health 200':46} {statistics.median(alone) * 1000:7.0f}ms")


def _cpu_of_tree(pid: int) -> float:
    """CPU seconds (user + system) that a process and its descendants have used so far."""
    root = psutil.Process(pid)
    times = [p.cpu_times() for p in (root, *root.children(recursive=True))]
    return float(sum(t.user + t.system for t in times))


def main() -> None:
    parser = command_line(__doc__)
    parser.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    parser.add_argument("--ready-runs", type=int, default=5, help="coordinator starts to /ready (default 5)")
    parser.add_argument("--no-bytecode", action="store_true", help="compile every module at every start")
    options = parser.parse_args()
    for key, value in machine().items():
        print(f"{key}: {value}")
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        folder = Path(tmp)
        # This process's environment is the one every measured process inherits.
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ.pop("PYTHONPYCACHEPREFIX", None)
        if options.no_bytecode:
            os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            os.environ["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        commands(options.runs, dict(os.environ), folder / "cli")
        ready(options.children, options.ready_runs, folder)


if __name__ == "__main__":
    main()
