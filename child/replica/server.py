"""Serving the replica inside someone else's event loop: the page origin over plain HTTP,
and the answer endpoint over HTTPS on a port of its own, both stopped together.

The coordinator's `--demo` (through `python -m child.replica`) and the tests start it on
free ports. Sockets are bound here, before uvicorn starts, so port 0 gets a free port
with no race between choosing it and using it; a fresh CA and certificate are written to
a temporary folder that goes when the replica stops; uvicorn's signal handling is off,
because the process that embeds the replica owns SIGINT and SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import shutil
import socket
import tempfile
from collections.abc import Generator
from pathlib import Path
from types import TracebackType
from typing import Final

import uvicorn

from child.replica.api import create_api_app
from child.replica.app import CHAT_PATH, create_app
from child.replica.config import ReplicaConfig
from child.replica.state import ReplicaState
from child.replica.tls import write_certificates

START_TIMEOUT_S: Final = 10.0
# Open connections (a browser's keep-alive ones) get this long to finish when we stop.
GRACEFUL_SHUTDOWN_S: Final = 1
# The name the answer endpoint is reached by, as its certificate says.
API_HOST: Final = "localhost"
LOOPBACK_NAMES: Final = ("127.0.0.1", "localhost")


class _EmbeddedServer(uvicorn.Server):
    """uvicorn's server that touches no signal handler: stopping is the embedder's decision."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _uvicorn_config(app: object, **tls: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        lifespan="off",
        ws="none",
        access_log=False,
        log_config=None,  # leave the host process's logging as it is
        log_level="warning",
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        **tls,  # type: ignore[arg-type]
    )


class ReplicaServer:
    """The replica: its page on `host:port`, its answer endpoint on `host:api_port` over
    TLS (port 0: a free one, known after `start`).

    Use `async with ReplicaServer(config) as replica: ... replica.chat_url ...`, or call
    `start()` and `stop()` yourself. `api_url` and `ca_file` say where the answers come
    from and which CA to trust for them.
    """

    def __init__(
        self, config: ReplicaConfig, host: str = "127.0.0.1", port: int = 0, api_port: int = 0
    ) -> None:
        self.config = config
        self.host = host
        self.state = ReplicaState(config)
        self.app = create_app(config, self.state)
        self.api_app = create_api_app(self.state)
        self._requested = (port, api_port)
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        self._servers: list[_EmbeddedServer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._folder: Path | None = None

    def _socket(self, index: int) -> socket.socket:
        if self._sockets is None:
            raise RuntimeError("the replica is not started")
        return self._sockets[index]

    @property
    def port(self) -> int:
        port: int = self._socket(0).getsockname()[1]
        return port

    @property
    def api_port(self) -> int:
        port: int = self._socket(1).getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """The page's origin, e.g. http://127.0.0.1:41234 (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def chat_url(self) -> str:
        return self.url + CHAT_PATH

    @property
    def api_url(self) -> str:
        """The answer endpoint's origin, e.g. https://localhost:41235."""
        return f"https://{API_HOST}:{self.api_port}"

    @property
    def ca_file(self) -> Path:
        """The PEM of the CA that signed the answer endpoint's certificate."""
        if self._folder is None:
            raise RuntimeError("the replica is not started")
        return self._folder / "replica-ca.pem"

    def _page_origins(self) -> set[str]:
        hosts = {self.host, *LOOPBACK_NAMES} if self.host in LOOPBACK_NAMES else {self.host}
        return {f"http://{host}:{self.port}" for host in hosts}

    def _certificate_ips(self) -> tuple[str, ...]:
        ips = ["127.0.0.1"]
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(self.host)
            if not address.is_unspecified and self.host not in ips:
                ips.append(self.host)
        return tuple(ips)

    async def start(self) -> None:
        if self._sockets is not None:
            raise RuntimeError("the replica is already started")
        page_socket = _bind(self.host, self._requested[0])
        try:
            api_socket = _bind(self.host, self._requested[1])
        except OSError:
            page_socket.close()
            raise
        self._sockets = (page_socket, api_socket)
        try:
            self._folder = Path(tempfile.mkdtemp(prefix="replica-tls-"))
            files = write_certificates(self._folder, (API_HOST,), self._certificate_ips())
            self.state.api_url = self.api_url
            self.state.page_origins = self._page_origins()
            tls = {"ssl_certfile": str(files.certificate), "ssl_keyfile": str(files.key)}
            self._servers = [
                _EmbeddedServer(_uvicorn_config(self.app)),
                _EmbeddedServer(_uvicorn_config(self.api_app, **tls)),
            ]
            for server, sock, name in zip(self._servers, self._sockets, ("page", "api"), strict=True):
                self._tasks.append(asyncio.create_task(server.serve(sockets=[sock]), name=f"replica-{name}"))
            async with asyncio.timeout(START_TIMEOUT_S):
                while not all(server.started for server in self._servers):
                    for task in self._tasks:
                        if task.done():
                            task.result()  # raises what stopped it
                            raise RuntimeError("the replica's server exited during start-up")
                    await asyncio.sleep(0.01)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close the listening sockets and open connections; safe to call more than once."""
        servers, tasks, sockets, folder = self._servers, self._tasks, self._sockets, self._folder
        self._servers, self._tasks, self._sockets, self._folder = [], [], None, None
        for server in servers:
            server.should_exit = True
        for task in tasks:
            # uvicorn notices should_exit within 0.1 s and bounds its own graceful shutdown.
            with contextlib.suppress(Exception):
                await task
        for sock in sockets or ():
            sock.close()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

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


async def serve(config: ReplicaConfig, host: str = "127.0.0.1", port: int = 0, api_port: int = 0) -> None:
    """Serve the replica until this coroutine is cancelled."""
    async with ReplicaServer(config, host, port, api_port):
        await asyncio.Event().wait()
