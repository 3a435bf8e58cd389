"""The roster: the one list of children that the supervisor, the pool, metrics and routes read.

Children join when a profile is added and leave when it is removed; the order is the
order they joined (the pool's round-robin follows it). Every state change of every
child goes through `notify` to the subscribed listeners, in the order they subscribed,
so nobody keeps a second list in step by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from coordinator.lifecycle.child import Child, ChildSpec, StateListener
from coordinator.lifecycle.states import ChildState


class Roster:
    def __init__(self, log_dir: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.log_dir = log_dir
        self.clock = clock
        self._children: dict[str, Child] = {}
        self._listeners: list[StateListener] = []

    def enlist(self, spec: ChildSpec) -> Child:
        """A new child for `spec`, stopped, on the roster and wired to its listeners."""
        if spec.id in self._children:
            raise ValueError(f"child {spec.id} is on the roster already")
        child = Child(spec, log_dir=self.log_dir, on_change=self.notify, clock=self.clock)
        self._children[child.id] = child
        return child

    def remove(self, child: Child) -> None:
        self._children.pop(child.id, None)

    def subscribe(self, listener: StateListener) -> None:
        self._listeners.append(listener)

    def notify(self, child: Child, old: ChildState, new: ChildState) -> None:
        for listener in self._listeners:
            listener(child, old, new)

    def get(self, child_id: str) -> Child | None:
        return self._children.get(child_id)

    def ids(self) -> list[str]:
        return list(self._children)

    def __iter__(self) -> Iterator[Child]:
        # A copy: a listener may add or remove a child while someone iterates.
        return iter(list(self._children.values()))

    def __len__(self) -> int:
        return len(self._children)

    def __contains__(self, child_id: object) -> bool:
        return child_id in self._children
