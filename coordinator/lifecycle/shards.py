"""Shards: which profiles of a shared folder this coordinator runs, when several hosts share it.

Every host reads the same profiles folder and runs only the profiles that rendezvous
(highest random weight) hashing gives to its shard: each profile goes to the shard whose
score for it is highest. Changing the number of shards moves only the profiles that must
move: from N to N+1 shards, a profile moves only if the new shard N now scores highest
for it (about 1/(N+1) of them), and it moves there, never between old shards.

The score is a BLAKE2b of "shard:name", the same on every host, Python and run; Python's
`hash()` is salted per process and would give every host a different answer. Shards are
numbered from 0, like a Kubernetes StatefulSet's pod ordinals.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# A StatefulSet's pod is named <statefulset>-<ordinal>, and that is its hostname.
_ORDINAL = re.compile(r"-(\d+)$")
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
# More shards than this is a typo, not a fleet.
MAX_SHARDS = 1024


class ShardError(ValueError):
    """A shard that cannot be: the message says what to give instead."""


def score(shard: int, name: str) -> int:
    """Shard `shard`'s weight for profile `name`: 64 bits of a hash, stable everywhere."""
    digest = hashlib.blake2b(f"{shard}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(name: str, count: int) -> int:
    """The shard, of `count`, that runs profile `name`: the one with the highest score.

    Ties (a chance of 2^-64) go to the lower shard, so every host still agrees."""
    return max(range(count), key=lambda shard: (score(shard, name), -shard))


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard `index` of `count` (0 <= index < count)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ShardError(f"the number of shards must be 1 to {MAX_SHARDS}, not {self.count}")
        if not 0 <= self.index < self.count:
            raise ShardError(
                f"shard {self.index} of {self.count} does not exist: "
                f"shards are numbered 0 to {self.count - 1}"
            )

    def owns(self, name: str) -> bool:
        return self.count == 1 or owner(name, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def as_json(self) -> dict[str, int]:
        return {"index": self.index, "count": self.count}


def parse(text: str) -> Shard:
    """`I/N` (e.g. `0/3`): shard I of N, numbered from 0."""
    match = _SHARD.match(text)
    if match is None:
        raise ShardError(
            f"--shard {text!r} is not I/N: give this host's shard and the number of shards, e.g. 0/3"
        )
    return Shard(int(match.group(1)), int(match.group(2)))


def from_hostname(hostname: str, count: int) -> Shard:
    """The shard of a StatefulSet's pod: `coordinator-3` is shard 3 of `count`."""
    match = _ORDINAL.search(hostname)
    if match is None:
        raise ShardError(
            f"--shard-from-hostname: the hostname {hostname!r} does not end in -<number> "
            "(a StatefulSet's pods are NAME-0, NAME-1, ...); give --shard I/N instead"
        )
    index = int(match.group(1))
    if index >= count:
        raise ShardError(
            f"--shard-from-hostname {count}: the hostname {hostname!r} is shard {index}, but there are only "
            f"{count} shards (0 to {count - 1}); make it the StatefulSet's replicas"
        )
    return Shard(index, count)
