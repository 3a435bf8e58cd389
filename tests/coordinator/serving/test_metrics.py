"""The drift gauge: one series per child and selector key it reports missing, names only."""

from __future__ import annotations

from pathlib import Path

from coordinator.lifecycle.roster import Roster
from coordinator.serving.metrics import Metrics
from tests.support.lifecycle import enlist_ready


def test_each_missing_selector_is_a_series_labelled_by_profile_and_key(tmp_path: Path) -> None:
    roster = Roster(tmp_path / "logs")
    first, second = enlist_ready(roster, tmp_path, 2)
    first.selectors_missing = ("prompt", "zero_state")
    second.selectors_missing = ("Not a key; secret=1",)  # only names become labels
    metrics = Metrics()
    metrics.watch(lambda: list(roster), lambda: {"high": 0, "normal": 0, "low": 0}, lambda: ["mock"])
    text = metrics.render().decode()
    series = [line for line in text.splitlines() if line.startswith("coordinator_child_selectors_missing{")]
    assert sorted(series) == [
        'coordinator_child_selectors_missing{profile="c0",selector="prompt"} 1.0',
        'coordinator_child_selectors_missing{profile="c0",selector="zero_state"} 1.0',
    ]
