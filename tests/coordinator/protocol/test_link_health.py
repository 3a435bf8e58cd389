"""The /health body's drift field: written by the child, read back by the coordinator."""

from __future__ import annotations

from coordinator.protocol.link import Health, HealthStatus


def test_selectors_missing_round_trips() -> None:
    health = Health(status=HealthStatus.READY, selectors_missing=("prompt", "zero_state"))
    body = health.to_json()
    assert body["selectors_missing"] == ["prompt", "zero_state"]
    assert Health.from_json(body) == health


def test_a_child_without_the_field_misses_nothing() -> None:
    assert Health.from_json({"status": "ready"}).selectors_missing == ()
