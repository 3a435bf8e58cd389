"""The operating-system seam: spawn a process group that dies with us, signal it, sweep it.

Everything that touches pids and signals goes through `Launcher`, so the lifecycle code
above it reads as decisions, not syscalls, and a test can swap it out.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None) -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when the coordinator dies.

    SIGTERM rather than SIGKILL so that a child can still close its browser. The
    getppid check covers a parent that died between fork and prctl.
    """
    if not sys.platform.startswith("linux"):
        return None
    parent_pid = parent_pid or os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork: no imports in the child

    def hook() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:
            os._exit(1)

    return hook


class Launcher:
    """Starts and signals child processes, each the leader of its own process group."""

    async def spawn(
        self, argv: Sequence[str], *, cwd: Path, env: dict[str, str]
    ) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )

    def signal_group(self, pid: int, sig: signal.Signals) -> bool:
        """Signal the group led by `pid`; False if it is already gone (the reaper's business)."""
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def descendants(self, pid: int) -> list[psutil.Process]:
        """Every live descendant, taken before a stop so that one that left the group is still found."""
        try:
            children: list[psutil.Process] = psutil.Process(pid).children(recursive=True)
            return children
        except psutil.Error:
            return []

    def kill(self, processes: Sequence[psutil.Process]) -> int:
        """SIGKILL whatever of `processes` is still running; returns how many were."""
        killed = 0
        for proc in processes:
            with contextlib.suppress(psutil.Error):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    proc.kill()
                    killed += 1
        return killed


def stop_process_group(
    process: subprocess.Popen[bytes], timeout: float = 10.0, sig: signal.Signals = signal.SIGTERM
) -> int | None:
    """Stop a process that leads its own group, and everything it started; returns its exit code.

    `sig` to the group, SIGKILL to what is left of the group at the deadline (or once the
    leader is gone), then SIGKILL to every descendant seen before the stop (one that left
    the group, like a browser, included).
    Synchronous, for those that hold a `Popen`: the CLI's demo, the tests, the benchmarks.
    """
    launcher = Launcher()
    descendants = launcher.descendants(process.pid)
    if process.poll() is None:
        launcher.signal_group(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    # Whatever is left of the group (all of it at the deadline), then those that left it.
    launcher.signal_group(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)
    launcher.kill(descendants)
    psutil.wait_procs(descendants, timeout=5)
    return process.returncode
