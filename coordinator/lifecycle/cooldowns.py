"""Profiles kept out of service across coordinator restarts: a small JSON file in the log dir.

Entries keyed by profile name (`profiles`), one per profile:

- `quota`, `rate_limited`: the whole account is out of quota (no model named) or
  rate-limited until a wall-clock time (epoch seconds). An entry whose time has passed
  is dropped on load.
- `auth_expired`: the profile is logged out. It holds the profile file's `mtime_ns` and
  `size` as they were when the child ran with it; while the file still matches, a new
  coordinator does not start that profile. A changed file clears the entry.

and, apart (`models`, written only when there are some), the account's models out of
quota: profile → model → `until` (epoch seconds). Quota is per account and per model,
so these do not keep the profile out, only its requests for that model.

Nothing secret goes in: no cookie, no content, no content hash; names, times, sizes.
Every change rewrites the whole file through a temporary file and `os.replace`, so a
crash leaves the old file or the new one, never half of one. The file is best effort:
a missing, unreadable or garbled file means "no cooldowns", with a warning.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from coordinator.protocol.writeback import write_atomically

log = structlog.get_logger("coordinator.lifecycle.cooldowns")

FILE_NAME = "cooldowns.json"
VERSION = 1


class Reason(enum.StrEnum):
    """Why a profile is kept out; the value is what the file says."""

    QUOTA = "quota"
    RATE_LIMITED = "rate_limited"
    AUTH_EXPIRED = "auth_expired"


# Entries that end at a time (the others end when the profile file changes).
TIMED = frozenset({Reason.QUOTA, Reason.RATE_LIMITED})


@dataclass(frozen=True, slots=True)
class FileStamp:
    """What identifies one version of a profile file without reading its content."""

    mtime_ns: int
    size: int

    @classmethod
    def of(cls, path: Path) -> FileStamp | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        return cls(mtime_ns=stat.st_mtime_ns, size=stat.st_size)


@dataclass(frozen=True, slots=True)
class Entry:
    reason: Reason
    recorded_at: float  # epoch seconds
    until: float | None = None  # epoch seconds; quota and rate_limited only
    stamp: FileStamp | None = None  # auth_expired only

    def remaining(self, now: float) -> float:
        """Seconds of quota cooldown left at wall-clock `now` (0 when over or not a quota)."""
        return max(0.0, self.until - now) if self.until is not None else 0.0

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"reason": self.reason.value, "recorded_at": round(self.recorded_at, 3)}
        if self.until is not None:
            data["until"] = round(self.until, 3)
        if self.stamp is not None:
            data["mtime_ns"] = self.stamp.mtime_ns
            data["size"] = self.stamp.size
        return data

    @classmethod
    def from_json(cls, data: Any) -> Entry | None:
        """The entry, or None if `data` is not one (an older or hand-edited file)."""
        if not isinstance(data, dict):
            return None
        reason = data.get("reason")
        recorded_at = data.get("recorded_at", 0.0)
        if not isinstance(recorded_at, int | float):
            return None
        if reason in TIMED:
            until = data.get("until")
            if not isinstance(until, int | float) or isinstance(until, bool):
                return None
            return cls(Reason(reason), float(recorded_at), until=float(until))
        if reason == Reason.AUTH_EXPIRED:
            mtime_ns, size = data.get("mtime_ns"), data.get("size")
            if not isinstance(mtime_ns, int) or not isinstance(size, int):
                return None
            return cls(Reason.AUTH_EXPIRED, float(recorded_at), stamp=FileStamp(mtime_ns, size))
        return None


def load(path: Path, now: float) -> dict[str, Entry]:
    """The entries in `path` still in force at wall-clock `now`; {} if there is no usable file."""
    return read(path, now)[0]


def read(path: Path, now: float) -> tuple[dict[str, Entry], dict[str, dict[str, float]]]:
    """The profile entries and the model quotas (profile → model → until) in force at `now`."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, {}
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("cooldowns_unreadable", path=str(path), error=f"{type(exc).__name__}: {exc}")
        return {}, {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        log.warning("cooldowns_unreadable", path=str(path), error=f"not valid JSON ({exc})")
        return {}, {}
    profiles = data.get("profiles") if isinstance(data, dict) else None
    if not isinstance(profiles, dict):
        log.warning("cooldowns_unreadable", path=str(path), error="no 'profiles' object")
        return {}, {}
    entries: dict[str, Entry] = {}
    for name, value in profiles.items():
        entry = Entry.from_json(value)
        if entry is None:
            log.warning("cooldown_entry_ignored", path=str(path), profile=name)
        elif entry.reason is Reason.AUTH_EXPIRED or entry.remaining(now) > 0:
            entries[str(name)] = entry
    return entries, _models_from_json(data.get("models"), now)


def _models_from_json(data: Any, now: float) -> dict[str, dict[str, float]]:
    if not isinstance(data, dict):
        return {}
    models: dict[str, dict[str, float]] = {}
    for name, per_model in data.items():
        if not isinstance(per_model, dict):
            continue
        kept = {
            str(model): float(until)
            for model, value in per_model.items()
            if isinstance(value, dict)
            and isinstance(until := value.get("until"), int | float)
            and not isinstance(until, bool)
            and until > now
        }
        if kept:
            models[str(name)] = kept
    return models


def save(
    path: Path, entries: Mapping[str, Entry], models: Mapping[str, Mapping[str, float]] | None = None
) -> None:
    """Write `entries` (and `models`: profile → model → until) to `path` atomically (a
    temporary file in the same folder, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "version": VERSION,
        "profiles": {name: entry.to_json() for name, entry in sorted(entries.items())},
    }
    if models:
        document["models"] = {
            name: {model: {"until": round(until, 3)} for model, until in sorted(per_model.items())}
            for name, per_model in sorted(models.items())
            if per_model
        }
    write_atomically(path, (json.dumps(document, indent=2) + "\n").encode())


class Cooldowns:
    """The state file and its entries in memory; every change is written at once.

    A write that fails is logged and the coordinator carries on: the file only matters
    at the next start.
    """

    def __init__(self, path: Path, *, wall: Callable[[], float] = time.time) -> None:
        self.path = path
        self.wall = wall
        self.entries: dict[str, Entry] = {}
        self.models: dict[str, dict[str, float]] = {}  # profile → model → until (epoch seconds)

    def load(self) -> dict[str, Entry]:
        self.entries, self.models = read(self.path, self.wall())
        return dict(self.entries)

    def get(self, name: str) -> Entry | None:
        return self.entries.get(name)

    def remaining(self, name: str) -> float:
        """Seconds of quota cooldown `name` has left, 0 if none."""
        entry = self.entries.get(name)
        return entry.remaining(self.wall()) if entry is not None else 0.0

    def record_quota(self, name: str, seconds: float, reason: Reason = Reason.QUOTA) -> None:
        """The whole account is out (quota of no model in particular, or a rate limit)."""
        if reason not in TIMED:
            raise ValueError(f"{reason} is not a cooldown that ends at a time")
        now = self.wall()
        self._set(name, Entry(reason, now, until=now + max(0.0, seconds)))

    def model_remaining(self, name: str) -> dict[str, float]:
        """Seconds left per model of `name` out of quota."""
        now = self.wall()
        return {model: until - now for model, until in self.models.get(name, {}).items() if until > now}

    def set_models(self, name: str, seconds: Mapping[str, float]) -> None:
        """`name`'s models out of quota are these (model → seconds left), and no others."""
        now = self.wall()
        kept = {model: now + left for model, left in seconds.items() if left > 0}
        if kept:
            self.models[name] = kept
        elif self.models.pop(name, None) is None:
            return
        self._write()

    def record_auth_expired(self, name: str, stamp: FileStamp) -> None:
        self._set(name, Entry(Reason.AUTH_EXPIRED, self.wall(), stamp=stamp))

    def clear(self, name: str) -> bool:
        """Forget `name`'s entry (not its model quotas: `set_models`); True if there was one."""
        if self.entries.pop(name, None) is None:
            return False
        self._write()
        return True

    def _set(self, name: str, entry: Entry) -> None:
        self.entries[name] = entry
        self._write()

    def _write(self) -> None:
        now = self.wall()
        # Quota entries that ran out are not worth keeping.
        self.entries = {
            name: entry
            for name, entry in self.entries.items()
            if entry.reason is Reason.AUTH_EXPIRED or entry.remaining(now) > 0
        }
        self.models = {
            name: kept
            for name, per_model in self.models.items()
            if (kept := {model: until for model, until in per_model.items() if until > now})
        }
        try:
            save(self.path, self.entries, self.models)
        except OSError as exc:
            log.warning("cooldowns_not_saved", path=str(self.path), error=f"{type(exc).__name__}: {exc}")
