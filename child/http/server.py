"""The child's server: serve the routes on 127.0.0.1 until told to stop, then exit with a
code the coordinator understands (see `coordinator.protocol.link`).

The server is the coordinator's own (`coordinator.http_server`): a mock child's CPU per
request was mostly uvicorn's and Starlette's layers, and at a thousand requests a second
that is what decides the latency the children add.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Final

import structlog
import uvloop

from child.engines.base import Engine
from child.http.responses import server_error_body
from child.http.routes import ChildApp
from child.session import Session
from child.settings import ChildSettings
from coordinator.http_server import HttpServer, Limits
from coordinator.protocol.link import EXIT_BOOT_FAILED, EXIT_STOPPED

log = structlog.get_logger("child.http.server")

GRACEFUL_SHUTDOWN_S: Final = 2
LIMITS: Final = Limits(
    # Longer than the coordinator keeps a connection idle, so it never reuses one we closed.
    keep_alive_timeout=60.0,
    # The coordinator stops reading while its own client is slow, and cuts that client
    # after its --send-timeout; the child waits longer, so that the coordinator decides.
    send_timeout=600.0,
)


def run(settings: ChildSettings, engine: Engine) -> int:
    """Serve until SIGTERM or SIGINT, or until the engine fails; the exit code says which."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(serve(settings, engine))


async def serve(settings: ChildSettings, engine: Engine, stop: asyncio.Event | None = None) -> int:
    """Serve until `stop` is set (by a signal, when it is not given) or the engine fails."""
    loop = asyncio.get_running_loop()
    exit_code = EXIT_STOPPED
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

    def engine_failed() -> None:
        nonlocal exit_code
        if stop.is_set():
            # Asked to stop first (SIGTERM, or Ctrl-C): the browser in our process group got
            # the signal too and died, which is no failure of ours. Stopped on request: 0.
            return
        exit_code = EXIT_BOOT_FAILED
        stop.set()

    session = Session(engine)
    app = ChildApp(settings, session, on_engine_failure=engine_failed)
    server = HttpServer(app, error_body=server_error_body, limits=LIMITS, half_close=False)
    try:
        await server.start(settings.host, settings.api_port)
    except OSError as exc:
        log.error(
            "child_start_failed",
            error=f"cannot listen on {settings.host}:{settings.api_port}: {exc.strerror}",
        )
        return EXIT_BOOT_FAILED
    log.info(
        "child_started", profile=settings.profile, engine=engine.name, port=settings.api_port, pid=os.getpid()
    )
    boot = asyncio.create_task(app.boot(), name="engine-start")
    try:
        await stop.wait()
    finally:
        # A request still running is cancelled by the shutdown, and stops its generation
        # before the browser goes away under it.
        await server.shutdown(GRACEFUL_SHUTDOWN_S)
        boot.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await boot
        await session.close()
        await engine.close()
        log.info("child_stopped", served=session.served)
    return exit_code
