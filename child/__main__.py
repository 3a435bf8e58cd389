"""The child's command line: parse, set up logging, run; exit 78 on a configuration error.

Exit codes are the coordinator's cue: 0 stopped on request, 1 failed to boot (retry with
backoff), 78 configured wrongly (do not retry until something changes): see
`coordinator.protocol.link`.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

from child.engines.base import EngineConfigError
from child.engines.factory import create_engine
from child.http.routes import run
from child.settings import ConfigError, load_settings
from coordinator.protocol.link import EXIT_CONFIG


def setup_logging() -> None:
    """JSON lines on stdout for our events and for the warnings of the libraries below us."""
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings(sys.argv[1:] if argv is None else argv, os.environ)
        engine = create_engine(settings, os.environ)
    except (ConfigError, EngineConfigError) as exc:
        print(f"child: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging()
    structlog.contextvars.bind_contextvars(profile=settings.profile)
    return run(settings, engine)


if __name__ == "__main__":
    sys.exit(main())
