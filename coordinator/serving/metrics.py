"""Prometheus metrics: what a run has served, refused and restarted, in `coordinator_*` names.

One `Metrics` object per run, with a registry of its own (no process-wide globals). It is
fed from a few places: the child state listener (restarts, ejections), the request edge
(requests, durations, time to first token, rejections), the pool (queue wait) and the
proxy (retries). Gauges that describe the present (children by state, queue depth by
priority lane) are
read from the live objects at scrape time, so they can never drift.

Labels hold profile names, states, status codes, model ids the children offer and
fixed reason codes: never a cookie, a token, a key or a prompt.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from coordinator.lifecycle.states import ACCOUNT_COOLDOWNS, ChildState, CooldownReason

if TYPE_CHECKING:
    from coordinator.lifecycle.child import Child

# Browser answers take seconds to minutes; the low buckets are for the proxy's own work.
_LATENCY_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_WAIT_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# The site's selector keys a child may report missing: short names, a bounded number.
_SELECTOR_KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")
_MAX_SELECTOR_LABELS = 64
# Model ids a child may report out of quota: a bounded number of short names.
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,79}")
_MAX_MODEL_LABELS = 32


class _Present(Collector):
    """Children by state and the queue's depth, read when Prometheus scrapes."""

    def __init__(
        self, children: Callable[[], Iterable[Child]], queue_depth: Callable[[], Mapping[Any, int]]
    ) -> None:
        self.children = children
        self.queue_depth = queue_depth

    def collect(self) -> Iterable[Metric]:
        counts = dict.fromkeys((state.value for state in ChildState), 0)
        for child in self.children():
            counts[child.state.value] += 1
        by_state = GaugeMetricFamily("coordinator_children", "Children by lifecycle state.", labels=["state"])
        for state, count in counts.items():
            by_state.add_metric([state], count)
        yield by_state
        depth = GaugeMetricFamily(
            "coordinator_queue_depth", "Requests waiting for a free child, by priority lane.", labels=["lane"]
        )
        for lane, count in self.queue_depth().items():
            # A lane is an enum or its name: the label is its value (high, normal, low).
            depth.add_metric([str(getattr(lane, "value", lane))], count)
        yield depth
        drift = GaugeMetricFamily(
            "coordinator_child_selectors_missing",
            "1 for each selector of the site's empty chat that matched nothing on a child's page "
            "at its last check (the page changed; see `coordinator check-site`).",
            labels=["profile", "selector"],
        )
        for child in self.children():
            for key in child.selectors_missing[:_MAX_SELECTOR_LABELS]:
                if _SELECTOR_KEY.fullmatch(key):  # names only, as the child's config has them
                    drift.add_metric([child.id, key], 1)
        yield drift
        fallback = GaugeMetricFamily(
            "coordinator_child_answers_from_dom",
            "Answers a child read from the rendered page because its capture saw none "
            "(markdown and code fences lost; see the child's answer_from_dom log lines).",
            labels=["profile"],
        )
        for child in self.children():
            fallback.add_metric([child.id], child.answers_from_dom)
        yield fallback
        yield from self._cooldowns()

    def _cooldowns(self) -> Iterable[Metric]:
        profile = GaugeMetricFamily(
            "coordinator_child_cooldown_seconds",
            "Seconds left of a child's cooldown as a whole (every model), by profile and reason "
            "(quota, rate_limited, permission_denied, ejected; -1: until a health check passes).",
            labels=["profile", "reason"],
        )
        per_model = GaugeMetricFamily(
            "coordinator_child_model_cooldown_seconds",
            "Seconds until a profile's quota for one model resets (it serves its other models).",
            labels=["profile", "model"],
        )
        for child in self.children():
            now = child.clock()
            if child.state is ChildState.COOLDOWN and child.cooldown_reason is not None:
                until = child.cooldown_until
                profile.add_metric(
                    [child.id, child.cooldown_reason.value],
                    max(0.0, until - now) if until is not None else -1,
                )
            models = sorted((m, until - now) for m, until in child.model_cooldowns.items() if until > now)
            for model, left in models[:_MAX_MODEL_LABELS]:
                if _MODEL_ID.fullmatch(model):  # an id as the child's site names it, nothing else
                    per_model.add_metric([child.id, model], left)
        yield profile
        yield per_model


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "coordinator_requests",
            "Chat completion requests answered, by status code and model.",
            ["status", "model"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "coordinator_request_duration_seconds",
            "Time from a chat request's arrival to the end of its answer.",
            ["stream"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.first_token = Histogram(
            "coordinator_time_to_first_token_seconds",
            "Time from a chat request's arrival to the first byte of its answer.",
            ["stream"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "coordinator_queue_wait_seconds",
            "Time requests spent waiting in the queue for a child.",
            buckets=_WAIT_BUCKETS,
            registry=self.registry,
        )
        self.restarts = Counter(
            "coordinator_child_restarts", "Child processes started again, by profile.", ["profile"],
            registry=self.registry,
        )  # fmt: skip
        self.ejections = Counter(
            "coordinator_child_ejections",
            "Children taken out of rotation after failures in a row, by profile.",
            ["profile"],
            registry=self.registry,
        )
        self.cooldowns = Counter(
            "coordinator_child_quota_cooldowns",
            "Children cooled down for a quota or rate limit, by profile.",
            ["profile"],
            registry=self.registry,
        )
        self.retries = Counter(
            "coordinator_retries",
            "Requests sent to another child after a failure before the first byte, by what failed.",
            ["reason"],
            registry=self.registry,
        )
        self.rejections = Counter(
            "coordinator_rejections",
            "Chat requests refused or failed without an answer, by error code.",
            ["reason"],
            registry=self.registry,
        )
        self.http_limits = Counter(
            "coordinator_http_limits",
            "Connections and requests the public port refused or cut, by the limit they met "
            "(too_many_connections, idle_closed, header_timeout, body_timeout, send_timeout, "
            "headers_too_large, too_many_headers, uri_too_long, request_too_large, "
            "max_pipelined, malformed_request, upgrade_not_supported).",
            ["limit"],
            registry=self.registry,
        )
        self._models: Callable[[], Sequence[str]] = list
        self._requests_by: dict[tuple[int, str], Counter] = {}
        self._duration_by = {kind: self.duration.labels(kind) for kind in ("true", "false")}
        self._first_token_by = {kind: self.first_token.labels(kind) for kind in ("true", "false")}

    def watch(self, children: Callable[[], Iterable[Child]], queue_depth: Callable[[], Mapping[Any, int]],
              models: Callable[[], Sequence[str]]) -> None:  # fmt: skip
        """Read the present state from these when scraped (`queue_depth`: waiting requests by
        lane); `models` bounds the model label."""
        self.registry.register(_Present(children, queue_depth))
        self._models = models

    def on_transition(self, child: Child, old: ChildState, new: ChildState) -> None:
        if new is ChildState.STARTING and child.restarts:
            self.restarts.labels(child.id).inc()
        elif new is ChildState.COOLDOWN and child.cooldown_reason is CooldownReason.EJECTED:
            self.ejections.labels(child.id).inc()
        elif new is ChildState.COOLDOWN and child.cooldown_reason in ACCOUNT_COOLDOWNS:
            self.cooldowns.labels(child.id).inc()

    def request_done(
        self, status: int, model: str | None, stream: bool, seconds: float, first_byte: float | None,
        error_code: str | None,
    ) -> None:  # fmt: skip
        # A client may send any model name: only the children's own ids become label values.
        label = "none" if model is None else (model if model in self._models() else "other")
        key = (status, label)
        counter = self._requests_by.get(key)
        if counter is None:  # labels() costs a lock and a validation: once per pair, not per request
            counter = self._requests_by[key] = self.requests.labels(str(status), label)
        counter.inc()
        kind = "true" if stream else "false"
        self._duration_by[kind].observe(seconds)
        if first_byte is not None and status == 200:
            self._first_token_by[kind].observe(first_byte)
        if status >= 400:
            self.rejections.labels(error_code or str(status)).inc()

    def limit_met(self, limit: str) -> None:
        """The HTTP server's report of a limit a client met; `limit` is one of a fixed set."""
        self.http_limits.labels(limit).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
