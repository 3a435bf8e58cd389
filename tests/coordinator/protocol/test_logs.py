"""The log renderer never drops an event: a value orjson refuses is written by an escaping serializer."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from coordinator.protocol import logs

Lines = Callable[[], list[dict[str, Any]]]


def cyclic() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


ODD_VALUES = {
    "lone high surrogate": "\ud800",
    "lone low surrogate": "\udfff",
    "reversed pair": "\udc00\ud800",
    "surrogate among text": "gpt-\ud83d-4",
    "integer past 64 bits": 2**70,
    "a key that is no string": {(1, 2): "x"},
    "a cycle": cyclic(),
}


@pytest.fixture(params=[True, False], ids=["coordinator", "child"])
def lines(request: pytest.FixtureRequest) -> Iterator[Lines]:
    """Logging configured as the coordinator (orjson) or a child (stdlib json) configures it."""
    buffer = io.BytesIO()
    stream = io.TextIOWrapper(buffer, encoding="utf-8", write_through=True)
    root = logging.getLogger()
    handlers, level = root.handlers, root.level
    logs.configure(json=True, stream=stream, compact=request.param)

    def read() -> list[dict[str, Any]]:
        stream.flush()
        # Every line is valid JSON, whatever was logged.
        return [json.loads(line) for line in buffer.getvalue().decode("utf-8").splitlines()]

    yield read
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level


@pytest.mark.parametrize("value", ODD_VALUES.values(), ids=ODD_VALUES.keys())
def test_an_event_with_a_value_that_cannot_be_encoded_still_gets_its_line(lines: Lines, value: Any) -> None:
    log = structlog.get_logger("test")
    log.info("request", request_id="r-1", model=value, status=400)
    log.info("request", request_id="r-2", model="mock", status=200)

    found = lines()

    assert [(line["event"], line["request_id"]) for line in found] == [("request", "r-1"), ("request", "r-2")]
    assert found[1]["model"] == "mock" and found[1]["status"] == 200


def test_a_lone_surrogate_is_kept_escaped_not_lost(lines: Lines) -> None:
    structlog.get_logger("test").info("request", request_id="r-1", model="\ud800", status=400)

    (line,) = lines()

    assert line["model"] == "\ud800" and line["status"] == 400 and line["level"] == "info"


def test_a_library_warning_with_a_lone_surrogate_gets_its_line(lines: Lines) -> None:
    # pytest adds its own capturing handlers to the root logger while a test runs; a record
    # kept there with a lone surrogate cannot be sent from a pytest-xdist worker (its report
    # would hold text no codec writes), so the root keeps only the handler configure() set.
    root = logging.getLogger()
    (ours,) = [h for h in root.handlers if isinstance(h.formatter, structlog.stdlib.ProcessorFormatter)]
    handlers, root.handlers = root.handlers, [ours]
    try:
        logging.getLogger("some.library").warning("odd value %s", "\ud800")
    finally:
        root.handlers = handlers

    (line,) = lines()

    assert line["event"] == "odd value \ud800" and line["level"] == "warning"
