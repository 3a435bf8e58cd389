"""Log setup for both processes: one JSON line per event off a terminal, readable lines on one.

The coordinator logs to stderr (JSON, or coloured lines on a terminal); a child logs JSON
lines to stdout, with the context it binds (its profile) on every line. Library loggers
(asyncio, httpx, uvicorn) go through the same renderer, warnings and up. Nothing here
decides what is logged; callers never pass a cookie, token, API key or prompt text.

No event is ever dropped for a value that cannot be encoded (a client's model name with
a lone surrogate, an integer past 64 bits): such an event is written by an escaping
serializer instead, so a client cannot keep its request out of the log.
"""

from __future__ import annotations

import json as stdlib_json
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
            structlog.processors.JSONRenderer(serializer=_fast_dumps, option=orjson.OPT_NON_STR_KEYS),
        ]
        factory: Callable[..., Any] = structlog.BytesLoggerFactory(stream.buffer)
        library: list[structlog.typing.Processor] = [
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ]
    elif json:
        # A child's lines, in the stdlib's spacing, each written whole in one write: the
        # coordinator reads them through a pipe, and a line in two writes wakes it twice.
        processors = [
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_ascii_dumps),
        ]
        factory = structlog.BytesLoggerFactory(stream.buffer)
        library = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer(serializer=_dumps)]
    else:
        library = [structlog.dev.ConsoleRenderer(colors=True)]
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


# What the stdlib's encoder raises: odd keys, cycles, depth.
_UNENCODABLE = (TypeError, ValueError, RecursionError)


def _fast_dumps(event: dict[str, Any], *, default: Callable[[Any], Any], option: int) -> bytes:
    """orjson, or the escaping serializer for the rare event orjson refuses."""
    try:
        return orjson.dumps(event, default=default, option=option)
    except orjson.JSONEncodeError:  # lone surrogates, integers past 64 bits, deep nesting
        return _dumps(event, default=default, separators=(",", ":")).encode("ascii")


def _ascii_dumps(event: dict[str, Any], **options: Any) -> bytes:
    return _dumps(event, **options).encode("ascii")


def _dumps(event: dict[str, Any], **options: Any) -> str:
    """The stdlib's JSON, all ASCII (a lone surrogate becomes `\\udXXX`); a value it cannot
    encode either (a cycle, a key that is no string) is written as its repr."""
    try:
        return stdlib_json.dumps(event, ensure_ascii=True, **options)
    except _UNENCODABLE:
        pass
    fallback: dict[str, Any] = {}
    for key, value in event.items():
        try:
            stdlib_json.dumps(value, ensure_ascii=True, **options)
        except _UNENCODABLE:
            value = _repr(value)
        fallback[key if isinstance(key, str) else _repr(key)] = value
    return stdlib_json.dumps(fallback, ensure_ascii=True, **options)


def _repr(value: Any) -> str:
    try:
        return repr(value)[:4000]
    except Exception as exc:  # a value whose own repr fails still leaves a trace
        return f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
