"""Serving the replica inside someone else's event loop: the coordinator's `--demo` and the
tests start it in-process on a free port and stop it when they are done.

The socket is bound here, before uvicorn starts, so port 0 gets a free port with no race
between choosing it and using it; and uvicorn's signal handling is switched off, because
the process that embeds the replica owns SIGINT and SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from types import TracebackType
from typing import Final

import uvicorn

from child.http.server import Server
from child.replica.app import CHAT_PATH, create_app
from child.replica.config import ReplicaConfig

START_TIMEOUT_S: Final = 10.0
# Open connections (a browser's keep-alive ones) get this long to finish when we stop.
GRACEFUL_SHUTDOWN_S: Final = 1


class ReplicaServer:
    """The replica on `host:port` (port 0: a free one, known after `start`).

    Use `async with ReplicaServer(config) as replica: ... replica.url ...`, or call
    `start()` and `stop()` yourself.
    """

    def __init__(self, config: ReplicaConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.host = host
        self.app = create_app(config)
        self._requested_port = port
        self._socket: socket.socket | None = None
        self._server: Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the replica is not started")
        port: int = self._socket.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """The replica's origin, e.g. http://127.0.0.1:41234 (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def chat_url(self) -> str:
        return self.url + CHAT_PATH

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the replica is already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            ws="none",
            access_log=False,
            log_config=None,  # leave the host process's logging as it is
            log_level="warning",
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        self._server = Server(config, own_signals=False)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="replica-server")
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                while not self._server.started:
                    if self._task.done():
                        self._task.result()  # raises what stopped it
                        raise RuntimeError("the replica's server exited during start-up")
                    await asyncio.sleep(0.01)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close the listening socket and open connections; safe to call more than once."""
        server, task, sock = self._server, self._task, self._socket
        self._server = self._task = None
        self._socket = None
        if server is not None:
            server.should_exit = True
        if task is not None:
            # uvicorn notices should_exit within 0.1 s and bounds its own graceful shutdown.
            with contextlib.suppress(Exception):
                await task
        if sock is not None:
            sock.close()

    async def __aenter__(self) -> ReplicaServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve(config: ReplicaConfig, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve the replica until this coroutine is cancelled."""
    async with ReplicaServer(config, host, port):
        await asyncio.Event().wait()
