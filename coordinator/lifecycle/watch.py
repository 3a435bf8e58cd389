"""Watching the profiles folder by polling: which valid profiles it holds now, and in which version.

No file-system events (no new dependency, and they are unreliable on mounted volumes):
the supervisor calls `scan()` every `--profiles-poll` seconds, or at once on SIGHUP, and
reconciles its children with the answer. A file is read again only when its size or
mtime changed; its version is a SHA-256 of its bytes, kept in memory only, so a `touch`
or a rewrite with the same content is no change. An invalid file is logged once per
version with its path and the reason, never with its content. With a shard, the files
that hash to other shards are counted and skipped unread.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import structlog

from coordinator.lifecycle.cooldowns import FileStamp
from coordinator.lifecycle.profiles import Profile, RejectedProfile, problem_with
from coordinator.lifecycle.shards import Shard

log = structlog.get_logger("coordinator.lifecycle.watch")


@dataclass(frozen=True, slots=True)
class ProfileVersion:
    """One valid profile file as last read."""

    profile: Profile
    stamp: FileStamp
    digest: str


@dataclass(frozen=True, slots=True)
class Scan:
    valid: dict[str, ProfileVersion]  # by profile name
    rejected: dict[str, RejectedProfile]  # by file stem
    skipped: int = 0  # files that other shards run


@dataclass(frozen=True, slots=True)
class _Seen:
    stamp: FileStamp
    digest: str
    problem: str | None


class ProfileWatcher:
    def __init__(self, folder: Path, shard: Shard | None = None) -> None:
        self.folder = folder
        self.shard = shard
        self._seen: dict[Path, _Seen] = {}
        self._folder_problem: str | None = None

    def scan(self, *, quiet: bool = False) -> Scan | None:
        """The folder as it is now, or None if it cannot be listed (then nothing should change).

        `quiet` skips logging rejected files: the first scan's were logged at startup.
        """
        try:
            paths = sorted(self.folder.glob("*.json")) if self.folder.is_dir() else None
        except OSError as exc:
            self._cannot_list(f"cannot be listed: {type(exc).__name__}: {exc}")
            return None
        if paths is None:
            self._cannot_list("does not exist")
            return None
        if self._folder_problem is not None:
            log.info("profiles_folder_back", folder=str(self.folder))
            self._folder_problem = None
        valid: dict[str, ProfileVersion] = {}
        rejected: dict[str, RejectedProfile] = {}
        seen: dict[Path, _Seen] = {}
        skipped = 0
        for path in paths:
            if self.shard is not None and not self.shard.owns(path.stem):
                skipped += 1
                continue
            version = self._read(path, quiet=quiet)
            if version is None:
                continue  # gone between the listing and the read
            seen[path] = version
            if version.problem is None:
                valid[path.stem] = ProfileVersion(Profile(path.stem, path), version.stamp, version.digest)
            else:
                rejected[path.stem] = RejectedProfile(path, version.problem)
        self._seen = seen
        return Scan(valid=valid, rejected=rejected, skipped=skipped)

    def _read(self, path: Path, *, quiet: bool) -> _Seen | None:
        stamp = FileStamp.of(path)
        if stamp is None:
            return None
        known = self._seen.get(path)
        if known is not None and known.stamp == stamp:
            return known
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return None
        problem = problem_with(path)
        if problem is not None and not quiet and (known is None or known.digest != digest):
            log.warning("profile_rejected", path=str(path), reason=problem)
        return _Seen(stamp, digest, problem)

    def _cannot_list(self, problem: str) -> None:
        if self._folder_problem != problem:
            log.warning(
                "profiles_folder_unavailable",
                folder=str(self.folder),
                problem=problem,
                effect="children keep running as they are until the folder is back",
            )
            self._folder_problem = problem
