"""Waiting on a condition, finding free ports, stopping what a test or a benchmark started."""

from __future__ import annotations

import contextlib
import random
import socket
import time
from collections.abc import Callable
from typing import TypeVar

import psutil

from coordinator.lifecycle.process import stop_process_group

__all__ = ["alive", "free_port", "free_port_bases", "stop_process_group", "wait_for"]

T = TypeVar("T")


def wait_for(condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `condition` until it returns something truthy, and return that; fail naming `what`
    at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def alive(pids: list[int]) -> list[int]:
    """Those of `pids` still running (a zombie is not)."""
    living = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                living.append(pid)
    return living


def free_port() -> int:
    """A port free now, chosen by the kernel."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_bases(count: int, ranges: int = 1, low: int = 12000, high: int = 30000) -> tuple[int, ...]:
    """`ranges` runs of `count` free ports, 1000 apart, between `low` and `high`.

    Below the kernel's ephemeral range, so that no outgoing connection takes one meanwhile;
    tests and benchmarks pass different bounds so that they can run at the same time.
    """
    span = 1000 * (ranges - 1) + count
    for _ in range(200):
        base = random.randrange(low, high - span, 10)
        bases = tuple(base + 1000 * i for i in range(ranges))
        if _all_free([b + i for b in bases for i in range(count)]):
            return bases
    raise RuntimeError(f"no {ranges} runs of {count} free ports between {low} and {high}")


def _all_free(ports: list[int]) -> bool:
    for port in ports:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True
