"""Reading a child's /health answer: the only source of "ready", and of "logged out" or "out of quota"."""

from __future__ import annotations

import json

from coordinator.lifecycle.health import read_health


def test_a_ready_answer_carries_the_models() -> None:
    body = json.dumps({"status": "ready", "engine": "mock", "models": ["mock", "mock-pro"]}).encode()
    report = read_health(200, body)
    assert report.can_serve and report.models == ("mock", "mock-pro")


def test_quota_and_logged_out_are_reported_as_such() -> None:
    quota = read_health(503, json.dumps({"status": "quota_exhausted", "retry_after": 60}).encode())
    assert (quota.status, quota.retry_after, quota.can_serve) == ("quota_exhausted", 60, False)
    logged_out = read_health(503, json.dumps({"status": "auth_expired", "detail": "sign in"}).encode())
    assert (logged_out.status, logged_out.detail) == ("auth_expired", "sign in")


def test_an_answer_outside_the_contract_counts_as_unreachable() -> None:
    assert read_health(200, b"<html>").status == "unreachable"
    assert read_health(200, b'{"status": "dancing"}').status == "unreachable"


def test_the_selectors_a_child_misses_come_through_and_junk_is_dropped() -> None:
    body = {"status": "ready", "selectors_missing": ["prompt", 3, "zero_state"]}
    assert read_health(200, json.dumps(body).encode()).selectors_missing == ("prompt", "zero_state")
    assert (
        read_health(200, json.dumps({"status": "ready", "selectors_missing": "x"}).encode()).selectors_missing
        == ()
    )
