"""Log setup for both processes: one JSON line per event off a terminal, readable lines on one.

The coordinator logs to stderr (JSON, or coloured lines on a terminal); a child logs JSON
lines to stdout, with the context it binds (its profile) on every line. Library loggers
(asyncio, httpx, uvicorn) go through the same renderer, warnings and up. Nothing here
decides what is logged; callers never pass a cookie, token, API key or prompt text.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, TextIO

import orjson
import structlog


def configure(
    level: str = "info",
    json: bool | None = None,
    *,
    stream: TextIO | None = None,
    context: bool = False,
    compact: bool = True,
) -> None:
    """Route structlog and the standard library's loggers to `stream` (stderr by default).

    `json` None: JSON unless the stream is a terminal. `context`: merge the context bound
    with `structlog.contextvars` into every event. `compact`: JSON by orjson, without
    spaces; else by the stdlib, spaced as `json.dumps` spaces it.
    """
    stream = stream or sys.stderr
    if json is None:
        json = not stream.isatty()
    shared: list[structlog.typing.Processor] = [
        *([structlog.contextvars.merge_contextvars] if context else []),
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json and compact:
        # orjson: the request line is written for every request, and this halves its cost.
        processors: list[structlog.typing.Processor] = [
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=orjson.dumps, option=orjson.OPT_NON_STR_KEYS),
        ]
        factory: Callable[..., Any] = structlog.BytesLoggerFactory(stream.buffer)
        library: list[structlog.typing.Processor] = [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ]
    else:
        renderer: structlog.typing.Processor = (
            structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=True)
        )
        library = [structlog.processors.format_exc_info, renderer] if json else [renderer]
        processors = [*shared, *library]
        factory = structlog.PrintLoggerFactory(stream)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *library],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)
