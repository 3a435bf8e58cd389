"""What the HTTP edge reads of a run, as a protocol: the edge never imports the run itself.

`coordinator.runtime.Coordinator` builds the serving side (it imports it), so the routes
see it only through this type; that keeps the import graph free of cycles.
"""

from __future__ import annotations

from typing import Any, Protocol

from coordinator.ledger.quota import QuotaTally
from coordinator.ledger.writer import Ledger
from coordinator.lifecycle.roster import Roster
from coordinator.lifecycle.supervisor import Supervisor
from coordinator.serving.metrics import Metrics
from coordinator.serving.pool import Pool
from coordinator.serving.proxy import Proxy
from coordinator.settings import Settings


class Service(Protocol):
    settings: Settings
    metrics: Metrics
    ledger: Ledger
    quota: QuotaTally
    pool: Pool
    proxy: Proxy
    supervisor: Supervisor
    roster: Roster
    started_at: float
    draining: bool

    def summary(self) -> dict[str, Any]:
        """The run at a glance, as /ready answers it."""
        ...

    def shard(self) -> dict[str, int]:
        """This run's shard (index, count) and the profile files it skipped (other shards')."""
        ...
