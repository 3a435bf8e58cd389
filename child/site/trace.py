"""What one request did on the page, step by step, and where its answers came from.

The trace is how the time the child adds before the first token is seen (and what
`check-site` prints); the answer sources are how a DOM reading is never silent: each
answer read from the rendered page is counted and its reason kept.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from playwright.async_api import Error as PlaywrightError

from child.engines.base import EngineError
from child.site.config import AnswerSource
from child.site.errors import DriverError


@dataclass(frozen=True, slots=True)
class StepTime:
    """One step: its name, how long it took, and its error if it failed."""

    name: str
    ms: float
    error: str | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Trace:
    """The steps of one request (or of the page's load), in order."""

    def __init__(self) -> None:
        self.steps: list[StepTime] = []

    @contextlib.asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[list[str]]:
        """Times the block; a Playwright error inside becomes a DriverError naming the step.

        The block may append a detail (one short line) to the list it is given."""
        started = time.perf_counter()
        detail: list[str] = []
        try:
            yield detail
        except PlaywrightError as exc:
            error = DriverError(name, first_line(exc))
            self._add(name, started, error.message, detail)
            raise error from None
        except EngineError as exc:
            self._add(name, started, exc.message, detail)
            raise
        except BaseException as exc:
            self._add(name, started, type(exc).__name__, detail)
            raise
        self._add(name, started, None, detail)

    def _add(self, name: str, started: float, error: str | None, detail: list[str]) -> None:
        ms = round((time.perf_counter() - started) * 1000, 1)
        self.steps.append(StepTime(name, ms, error, "; ".join(detail) or None))

    def durations(self) -> dict[str, float]:
        return {step.name: step.ms for step in self.steps}


@dataclass(frozen=True, slots=True)
class AnswerSources:
    """Where answers were read: the last one's source (and why, if the DOM), and counts."""

    last: AnswerSource | None = None
    reason: str | None = None
    network: int = 0
    dom: int = 0

    def counted(self, source: AnswerSource, reason: str | None = None) -> AnswerSources:
        if source is AnswerSource.DOM:
            return replace(self, last=source, reason=reason, dom=self.dom + 1)
        return replace(self, last=source, reason=None, network=self.network + 1)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
