"""Waiting on a condition, finding free ports, stopping what a test or a benchmark started."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import time
from collections.abc import Callable
from typing import TypeVar

import psutil

from coordinator.lifecycle.process import stop_process_group

__all__ = ["alive", "free_port", "free_port_bases", "stop_process_group", "wait_for", "worker_ports"]

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
    """A port free now: the kernel's choice, or, on a pytest-xdist worker, the next free one of
    the worker's own ports (see `worker_ports`)."""
    own = worker_ports(PORTS_LOW, PORTS_HIGH)
    if own is not None:
        return _TURNS.take(own[1], own[2])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


PORTS_LOW, PORTS_HIGH = 12000, 30000


def worker_ports(low: int, high: int) -> tuple[int, int, int] | None:
    """On pytest-xdist worker k of n: its own share of [low, high), as (start, split, end), the
    runs of `free_port_bases` from [start, split) and single ports from [split, end); None
    off a worker.

    Workers run side by side: each picks ports only from its share, so that no two pick one
    port in the instant before either binds it, and `free_port` picks below the kernel's
    ephemeral range, where no outgoing connection (a hostile test opens thousands) takes a
    port between the pick and the bind.
    """
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not worker.startswith("gw") or not worker[2:].isdigit() or not count or not count.isdigit():
        return None
    share = (high - low) // max(1, int(count))
    start = low + share * int(worker[2:])
    return start, start + share * 3 // 4, start + share


class _Turns:
    """Single ports handed out in turn from a random start, skipping those in use: two asked
    for before either is bound (a child's three ports) always differ."""

    def __init__(self) -> None:
        self.next: int | None = None

    def take(self, low: int, high: int) -> int:
        for _ in range(high - low):
            if self.next is None or not low <= self.next < high:
                self.next = random.randrange(low, high)
            port = self.next
            self.next = low + (port + 1 - low) % (high - low)
            if _all_free([port]):
                return port
        raise RuntimeError(f"no free port between {low} and {high}")


# One per process (each pytest-xdist worker is one): the turn is this process's own.
_TURNS = _Turns()


def free_port_bases(
    count: int, ranges: int = 1, low: int = PORTS_LOW, high: int = PORTS_HIGH
) -> tuple[int, ...]:
    """`ranges` runs of `count` free ports, 1000 apart, between `low` and `high`.

    Below the kernel's ephemeral range, so that no outgoing connection takes one meanwhile;
    tests and benchmarks pass different bounds so that they can run at the same time, and
    each pytest-xdist worker keeps to its own share (`worker_ports`) where the runs fit in it.
    """
    span = 1000 * (ranges - 1) + count
    own = worker_ports(low, high)
    if own is not None and own[1] - own[0] > span + 10:
        low, high = own[0], own[1]
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
