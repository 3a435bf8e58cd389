"""The gauges of the present: drift (one series per child and selector key it reports missing,
names only) and cooldowns (per profile and model, per profile and reason)."""

from __future__ import annotations

from pathlib import Path

from coordinator.lifecycle.roster import Roster
from coordinator.lifecycle.states import CooldownReason
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


def test_cooldowns_are_gauges_by_profile_and_model_and_by_profile_and_reason(tmp_path: Path) -> None:
    roster = Roster(tmp_path / "logs")
    first, second = enlist_ready(roster, tmp_path, 2)
    now = first.clock()
    first.cool_model("pro", now + 600, "test")
    first.cool_model("secret=1 not a model", now + 600, "test")  # only ids become labels
    second.cool_down(CooldownReason.RATE_LIMITED, now + 120, "test")
    metrics = Metrics()
    metrics.watch(lambda: list(roster), lambda: {}, lambda: ["mock"])
    lines = metrics.render().decode().splitlines()

    def series(name: str) -> dict[str, float]:
        return {
            line.split(" ")[0]: float(line.split(" ")[1]) for line in lines if line.startswith(name + "{")
        }

    per_model = series("coordinator_child_model_cooldown_seconds")
    assert list(per_model) == ['coordinator_child_model_cooldown_seconds{model="pro",profile="c0"}']
    assert 590 < next(iter(per_model.values())) <= 600
    whole = series("coordinator_child_cooldown_seconds")
    assert list(whole) == ['coordinator_child_cooldown_seconds{profile="c1",reason="rate_limited"}']
    assert 110 < next(iter(whole.values())) <= 120
