"""Fixtures that run the real `coordinator` with real mock children (tests/support/coordinator.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.coordinator import Runs, StartCoordinator


@pytest.fixture
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    started = Runs(tmp_path_factory)
    yield started
    started.close()


@pytest.fixture
def start_coordinator(runs: Runs) -> StartCoordinator:
    return runs.start


@pytest.fixture(scope="module")
def module_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    runs = Runs(tmp_path_factory)
    yield runs
    runs.close()
