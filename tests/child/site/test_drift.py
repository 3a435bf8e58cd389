"""Drift: the page's answer to the selector check, and one log line per change."""

from __future__ import annotations

from collections.abc import Collection

from structlog.testing import capture_logs

from child.site.config import SELECTORS, ZERO_STATE_KEYS
from child.site.drift import Drift, check_request, read_matches


def _matches(missing: Collection[str], fallback: Collection[str] = ()) -> dict[str, int]:
    return {key: -1 if key in missing else (1 if key in fallback else 0) for key in ZERO_STATE_KEYS}


def test_the_check_asks_each_zero_state_key_with_its_alternatives() -> None:
    request = check_request(SELECTORS)
    assert list(request) == list(ZERO_STATE_KEYS)
    assert len(request["prompt"]) == 3
    assert request["zero_state"] == ["ms-zero-state"]


def test_matches_tell_missing_from_fallback() -> None:
    matches = {m.key: m for m in read_matches(SELECTORS, _matches({"zero_state"}, {"prompt"}))}
    assert not matches["zero_state"].matched
    assert matches["prompt"].fallback and matches["prompt"].matched_selector == (
        'textarea[formcontrolname="promptText"]'
    )
    assert matches["run_button"].matched and not matches["run_button"].fallback


def test_one_log_line_per_change_of_the_missing_keys() -> None:
    drift = Drift()
    with capture_logs() as logged:
        drift.update(read_matches(SELECTORS, _matches(set())))
        drift.update(read_matches(SELECTORS, _matches({"prompt"})))
        drift.update(read_matches(SELECTORS, _matches({"prompt"})))  # no change: no line
        drift.update(read_matches(SELECTORS, _matches(set())))
    lines = [entry for entry in logged if entry["event"] == "selectors_missing"]
    assert [line["missing"] for line in lines] == [["prompt"], []]
    assert lines[0]["log_level"] == "warning" and "prompt" in lines[0]["selectors"]
    assert lines[1]["fixed"] == ["prompt"]
    assert drift.missing == ()


def test_missing_at_the_first_check_is_logged() -> None:
    drift = Drift()
    with capture_logs() as logged:
        drift.update(read_matches(SELECTORS, _matches({"zero_state"})))
    assert [entry["missing"] for entry in logged] == [["zero_state"]]
    assert drift.missing == ("zero_state",)
