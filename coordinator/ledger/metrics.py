"""The ledger's counters and the quota view's gauges for Prometheus, read when scraped."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from coordinator.ledger.quota import QuotaTally
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


class QuotaCollector(Collector):
    """The quota day's use per profile and model (gauges: they start again at midnight Pacific)."""

    def __init__(self, tally: QuotaTally, known: Callable[[], Iterable[tuple[str, str]]]) -> None:
        self.tally = tally
        self.known = known  # (profile, model) of each model each child offers

    def collect(self) -> Iterable[Metric]:
        labels = ["profile", "model"]
        requests = GaugeMetricFamily(
            "coordinator_quota_requests", "Requests served in the current quota day (Pacific).", labels=labels
        )
        hits = GaugeMetricFamily(
            "coordinator_quota_hits", "Quota refusals reported in the current quota day.", labels=labels
        )
        limit = GaugeMetricFamily(
            "coordinator_quota_daily_limit",
            "Requests a day the account may make (where known).",
            labels=labels,
        )
        remaining = GaugeMetricFamily(
            "coordinator_quota_remaining",
            "Requests left in the quota day (where a limit is known).",
            labels=labels,
        )
        tokens = GaugeMetricFamily(
            "coordinator_quota_tokens",
            "Tokens used in the current quota day, by kind (prompt, completion, reasoning).",
            labels=[*labels, "kind"],
        )
        for row in self.tally.rows(self.known()):
            names = [row["profile"], row["model"]]
            requests.add_metric(names, row["requests"])
            hits.add_metric(names, row["quota_hits"])
            for kind in ("prompt", "completion", "reasoning"):
                tokens.add_metric([*names, kind], row[f"{kind}_tokens"])
            if row["daily_limit"] is not None:
                limit.add_metric(names, row["daily_limit"])
                remaining.add_metric(names, row["remaining"])
        yield from (requests, hits, limit, remaining, tokens)
