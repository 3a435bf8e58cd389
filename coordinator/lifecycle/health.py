"""Asking a child how it is: one `GET /health`, read into a `HealthReport`.

The child's answer is the only source of "ready"; a child that does not answer in time
is `unreachable`, which the supervisor counts towards killing it as hung.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from coordinator.protocol.link import CAN_SERVE, Health, HealthError, HealthStatus
from coordinator.serving.transport import Transport, TransportError


@dataclass(frozen=True, slots=True)
class HealthReport:
    status: str  # the child's own word, or "unreachable"
    detail: str | None = None
    models: tuple[str, ...] = ()
    retry_after: float | None = None  # seconds until a quota cooldown ends, if the child knows

    @property
    def can_serve(self) -> bool:
        return self.status in CAN_SERVE


async def probe(transport: Transport, port: int, timeout: float) -> HealthReport:
    try:
        async with asyncio.timeout(timeout):
            status_code, raw = await transport.fetch(port, "GET", "/health")
        body = json.loads(raw)
    except TimeoutError:
        return HealthReport(status="unreachable", detail=f"no answer within {timeout:g}s")
    except TransportError as exc:
        return HealthReport(status="unreachable", detail=str(exc))
    except ValueError:
        return HealthReport(status="unreachable", detail="/health did not answer JSON")
    try:
        health = Health.from_json(body)
    except HealthError as exc:
        return HealthReport(status="unreachable", detail=str(exc))
    status = health.status.value
    if status_code == 200 and not health.can_serve:
        status = HealthStatus.READY.value
    return HealthReport(
        status=status, detail=health.detail, models=health.models, retry_after=health.retry_after
    )
