"""What a command imports, read from `sys.modules` of a new process as it exits: start-up
time is kept by importing heavy modules only on the paths that use them (docs/benchmarks.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

# Runs `-m module args...` or `-c code` as python would, then writes sys.modules as it exits
# (after a SystemExit too: a command may fail after its imports, as `status` with nothing
# listening). An import that failed, as structlog's of rich when it is hidden, is not there.
_BOOTSTRAP = """
import atexit, json, os, runpy, sys
def listing():
    # A None entry marks a module as missing, not imported (coordinator/__init__.py).
    loaded = sorted(name for name, module in sys.modules.items() if module is not None)
    open(os.environ["IMPORTED_TO"], "w").write(json.dumps(loaded))
atexit.register(listing)
flag, target, *rest = sys.argv[1:]
if flag == "-m":
    sys.argv = [target, *rest]
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    sys.argv = ["-c", *rest]
    exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})
"""


def imported_by(argv: Sequence[str]) -> set[str]:
    """Every module that `python argv...` (`-m module ...` or `-c code`) had imported at exit."""
    with tempfile.TemporaryDirectory() as folder:
        listing = Path(folder) / "modules.json"
        done = subprocess.run(
            [sys.executable, "-c", _BOOTSTRAP, *argv],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "IMPORTED_TO": str(listing)},
        )
        assert listing.exists(), f"{argv} left no module list: {done.stderr[-500:]}"
        modules: list[str] = json.loads(listing.read_text())
    return set(modules)


def heavy(modules: set[str], *names: str) -> set[str]:
    """Which of `names` (packages or modules) `modules` holds, a package counting by any of its
    modules."""
    return {name for name in names if any(m == name or m.startswith(name + ".") for m in modules)}
