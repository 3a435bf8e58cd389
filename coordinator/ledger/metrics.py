"""The ledger's counters for Prometheus, read from the `Ledger` when scraped."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from coordinator.ledger.writer import Ledger


class LedgerCollector(Collector):
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily(
            "coordinator_ledger_rows_written",
            "Requests written to the usage ledger.",
            value=self.ledger.written,
        )
        yield CounterMetricFamily(
            "coordinator_ledger_rows_dropped",
            "Requests left out of the usage ledger because its queue was full.",
            value=self.ledger.dropped,
        )
        yield CounterMetricFamily(
            "coordinator_ledger_rows_failed",
            "Requests lost to a failed ledger write (full disk, unwritable --data-dir).",
            value=self.ledger.failed,
        )
