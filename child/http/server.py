"""The child's uvicorn runner: serve the routes until told to stop, then exit with a code
the coordinator understands; and the uvicorn server with our signal policy, which the
replica's embedded server shares.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Generator
from typing import Final

import uvicorn

from child.engines.base import Engine
from child.http.routes import create_app
from child.session import Session
from child.settings import ChildSettings
from coordinator.protocol.link import EXIT_BOOT_FAILED, EXIT_STOPPED

GRACEFUL_SHUTDOWN_S: Final = 2
KEEP_ALIVE_S: Final = 60


def run(settings: ChildSettings, engine: Engine) -> int:
    """Serve until told to stop; the exit code says whether the engine failed (see `link`)."""
    exit_code = EXIT_STOPPED

    def engine_failed() -> None:
        nonlocal exit_code
        if server.should_exit:
            # Asked to stop first (SIGTERM, or Ctrl-C): the browser in our process group got
            # the signal too and died, which is no failure of ours. Stopped on request: 0.
            return
        exit_code = EXIT_BOOT_FAILED
        server.should_exit = True

    app = create_app(settings, Session(engine), on_engine_failure=engine_failed)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.api_port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,  # our logging setup already routes uvicorn's warnings to JSON
        log_level="warning",
        server_header=False,
        # Only the coordinator calls a child, and sends no X-Forwarded-* headers: their
        # middleware would be one more layer of work per request, for nothing.
        proxy_headers=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        # Longer than the coordinator keeps a connection idle, so it never reuses one we closed.
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    server = Server(config)
    server.run()
    return exit_code


class Server(uvicorn.Server):
    """uvicorn's server, with the signal policy of the process that runs it.

    A child (`own_signals`) handles SIGTERM/SIGINT itself but does not re-raise them once
    it has shut down, as uvicorn would: the process would die by the signal (or print a
    KeyboardInterrupt traceback) and skip what follows, where a child stopped on purpose
    exits 0 after an orderly shutdown. A server embedded in another process (the replica
    in the demo and the tests) touches no signal handler at all: stopping is the
    embedding process's decision.
    """

    def __init__(self, config: uvicorn.Config, *, own_signals: bool = True) -> None:
        super().__init__(config)
        self.own_signals = own_signals

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if not self.own_signals:
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
