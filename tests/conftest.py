"""Fixtures that run the real `coordinator` with real mock children (tests/support/coordinator.py),
and the marks that tell the slow tests from the fast ones, given here by folder and module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.coordinator import Runs, StartCoordinator

# Paths under tests/ (folders end with "/") and the marks their tests get.
MARKS = {
    "e2e/": ("e2e",),
    "deploy/": ("e2e",),
    "e2e/test_browser.py": ("e2e", "browser"),
    "e2e/test_dashboard_browser.py": ("e2e", "browser"),
    "child/test_child.py": ("e2e",),
    "replica/test_page.py": ("browser",),
}
TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        where = item.path.relative_to(TESTS).as_posix()
        for prefix, marks in MARKS.items():
            if where == prefix or (prefix.endswith("/") and where.startswith(prefix)):
                for mark in marks:
                    item.add_marker(mark)


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
