"""Asking a child how it is: the `Prober` seam, and a `/health` answer read into a `HealthReport`.

The child's answer is the only source of "ready"; a child that does not answer in time
is `unreachable`, which the supervisor counts towards killing it as hung. How the
question travels (the coordinator's HTTP client) is the runtime's business: lifecycle
only names the seam, so it never depends on the serving side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from coordinator.protocol.link import CAN_SERVE, Health, HealthError, HealthStatus

UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class HealthReport:
    status: str  # the child's own word, or "unreachable"
    detail: str | None = None
    models: tuple[str, ...] = ()
    retry_after: float | None = None  # seconds until a quota cooldown ends, if the child knows
    quota: Mapping[str, float] = field(default_factory=dict)  # models out of quota: seconds left
    request_id: str | None = None  # the request the child says it is serving
    selectors_missing: tuple[str, ...] = ()  # the site's selectors that no longer match (drift)
    answers_from_dom: int = 0  # answers the child read from the rendered page (the fallback)

    @property
    def can_serve(self) -> bool:
        return self.status in CAN_SERVE


class Prober(Protocol):
    """`GET /health` of the child on `port`, answered within `timeout` seconds or `unreachable`."""

    async def __call__(self, port: int, timeout: float) -> HealthReport: ...


class Canceller(Protocol):
    """`POST /v1/cancel/{request_id}` on the child on `port`; True if it stopped that request."""

    async def __call__(self, port: int, request_id: str, timeout: float) -> bool: ...


def unreachable(detail: str) -> HealthReport:
    return HealthReport(status=UNREACHABLE, detail=detail)


def read_health(status_code: int, raw: bytes) -> HealthReport:
    """The report of one `/health` answer: its status code and body."""
    try:
        body = json.loads(raw)
    except ValueError:
        return unreachable("/health did not answer JSON")
    try:
        health = Health.from_json(body)
    except HealthError as exc:
        return unreachable(str(exc))
    status = health.status.value
    if status_code == 200 and not health.can_serve:
        status = HealthStatus.READY.value
    return HealthReport(
        status=status,
        detail=health.detail,
        models=health.models,
        retry_after=health.retry_after,
        quota=health.quota,
        request_id=health.request_id,
        selectors_missing=health.selectors_missing,
        answers_from_dom=health.answers_from_dom,
    )
