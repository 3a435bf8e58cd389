"""Which models of this account are out of quota, and until when: the engine's memory of it.

Quota is per account and per model: the site may refuse one model for hours while the
others answer. An engine notes each `QuotaExhausted` here, refuses a request for a model
still out of quota without touching the page (`check`), and reports what is left in its
`EngineStatus.quota` (so in `/health`). A quota whose model the site did not name is not
kept here: it is the whole account's, and the engine's state says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from child.engines.base import QuotaExhausted

log = structlog.get_logger("child.engines.quota")


class QuotaBook:
    """Model → the moment (on `clock`) its quota resets."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}

    def note(self, error: QuotaExhausted) -> None:
        """Remember a quota answer for its model; one without a model is not the book's."""
        if error.model is None:
            return
        seconds = error.retry_after if error.retry_after is not None else QuotaExhausted.default_retry_after
        self._until[error.model] = self._clock() + seconds
        log.info("model_quota_exhausted", model=error.model, seconds=seconds)

    def check(self, model: str) -> None:
        """Raise QuotaExhausted if `model` is still out of quota."""
        left = self.remaining().get(model)
        if left is not None:
            raise QuotaExhausted(
                f"this account is out of quota for the model {model!r} for another {left:.0f}s",
                model=model,
                retry_after=max(1, round(left)),
            )

    def remaining(self) -> dict[str, float]:
        """Seconds left per model still out of quota; models whose quota reset are forgotten."""
        now = self._clock()
        self._until = {model: until for model, until in self._until.items() if until > now}
        return {model: round(until - now, 3) for model, until in self._until.items()}
