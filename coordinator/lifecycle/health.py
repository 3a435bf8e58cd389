"""Asking a child how it is: one `GET /health`, read into a `HealthReport`.

The child's answer is the only source of "ready"; a child that does not answer in time
is `unreachable`, which the supervisor counts towards killing it as hung.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from coordinator.transport import Transport, TransportError

CAN_SERVE = frozenset({"ready", "busy"})


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
    if not isinstance(body, dict):
        return HealthReport(status="unreachable", detail="/health did not answer a JSON object")
    status = str(body.get("status", "unknown"))
    if status_code == 200 and status not in CAN_SERVE:
        status = "ready"
    models = body.get("models")
    retry_after = body.get("retry_after")
    return HealthReport(
        status=status,
        detail=body.get("detail") if isinstance(body.get("detail"), str) else None,
        models=tuple(m for m in models if isinstance(m, str)) if isinstance(models, list) else (),
        retry_after=float(retry_after)
        if isinstance(retry_after, int | float) and not isinstance(retry_after, bool) and retry_after > 0
        else None,
    )
