"""Port triples for children: one api, one stream and one browser port each.

Child *i* gets `base + i * step` in each of the three ranges. The ranges must not
overlap each other or the coordinator's own port, and every port must be free before
anything is spawned; a taken port is named with the process that holds it.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

import psutil


@dataclass(frozen=True, slots=True)
class PortTriple:
    api: int
    stream: int
    browser: int

    def uses(self) -> dict[int, str]:
        return {self.api: "child api", self.stream: "child stream proxy", self.browser: "child browser"}


class PortError(Exception):
    """The ports cannot be used as configured; the message says which and what to change."""


def allocate(
    count: int, *, base_api: int, base_stream: int, base_browser: int, step: int
) -> list[PortTriple]:
    if step < 1:
        raise PortError(f"--port-step must be at least 1, not {step}")
    triples = [
        PortTriple(api=base_api + i * step, stream=base_stream + i * step, browser=base_browser + i * step)
        for i in range(count)
    ]
    ranges = {
        "api": {t.api for t in triples},
        "stream": {t.stream for t in triples},
        "browser": {t.browser for t in triples},
    }
    names = list(ranges)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            shared = ranges[first] & ranges[second]
            if shared:
                raise PortError(
                    f"the {first} and {second} port ranges overlap at port {min(shared)} "
                    f"for {count} children; move one of --base-{first}-port / --base-{second}-port"
                )
    highest = max(max(r) for r in ranges.values()) if count else 0
    if highest > 65535:
        raise PortError(f"{count} children need ports up to {highest}, above 65535; lower the base ports")
    return triples


def check_free(ports: dict[int, str], host: str = "127.0.0.1") -> None:
    """Raise PortError naming the first taken port, its use, and its holder when known."""
    for port, use in sorted(ports.items()):
        if not is_free(port, host):
            holder = holder_of(port)
            held = f" (held by {holder})" if holder else ""
            raise PortError(
                f"port {port} ({use}) is already in use{held}; stop that process or choose other base ports"
            )


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # The same option the servers bind with, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def holder_of(port: int) -> str | None:
    """`name (pid N)` of the process listening on `port`, if this user may see it."""
    try:
        connections = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            try:
                return f"{psutil.Process(conn.pid).name()} (pid {conn.pid})"
            except psutil.Error:
                return f"pid {conn.pid}"
    return None
