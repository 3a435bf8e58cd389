"""Fixtures that run the real `coordinator` with real mock children (tests/support/coordinator.py),
the marks that tell the slow tests from the fast ones, given here by folder and module, and
`--part`, which scripts/test.sh uses to run the suite on several workers and then, one at a
time, the tests marked `alone`.
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
    # Its assertion is a p99 under 50 ms while hostile clients flood the coordinator.
    "e2e/hostile/test_mix.py": ("alone",),
    # Three hosts, HAProxy and 24 clients: which requests a kill or a drain costs depends on
    # timing that a loaded machine shifts, and the load it makes would shift other tests'.
    "deploy/test_hosts.py": ("alone",),
}
TESTS = Path(__file__).parent
PARTS = ("all", "parallel", "alone")


def pytest_addoption(parser: pytest.Parser) -> None:
    # An option rather than a second -m: the user's own -m (or -k, or paths) still applies,
    # and the part narrows what it selected.
    parser.addoption(
        "--part",
        choices=PARTS,
        default="all",
        help="all (default): every selected test; parallel: those not marked `alone` (for "
        "pytest-xdist's workers); alone: only those marked `alone` (to run one at a time)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        where = item.path.relative_to(TESTS).as_posix()
        for prefix, marks in MARKS.items():
            if where == prefix or (prefix.endswith("/") and where.startswith(prefix)):
                for mark in marks:
                    item.add_marker(mark)
    part = config.getoption("--part")
    if part == "all":
        return
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        alone = item.get_closest_marker("alone") is not None
        (kept if alone == (part == "alone") else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


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
