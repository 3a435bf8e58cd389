"""Fixtures: real child processes on real sockets, each killed with its process group on teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.child import ChildProcess, SpawnChild, spawner


@pytest.fixture
def spawn_child(tmp_path: Path) -> Iterator[SpawnChild]:
    """A factory: spawn_child(env={...}) starts a child and (by default) waits until ready."""
    children: list[ChildProcess] = []
    yield spawner(tmp_path, children)
    for child in children:
        child.kill()


@pytest.fixture(scope="module")
def child(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChildProcess]:
    """One default mock child shared by the tests that leave it as they found it."""
    children: list[ChildProcess] = []
    yield spawner(tmp_path_factory.mktemp("shared"), children)()
    for started in children:
        started.kill()
