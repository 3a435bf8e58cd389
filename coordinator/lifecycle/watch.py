"""Watching the profiles folder by polling: which valid profiles it holds now, and in which version.

No file-system events (no new dependency, and they are unreliable on mounted volumes):
the supervisor calls `scan()` every `--profiles-poll` seconds, or at once on SIGHUP, and
reconciles its children with the answer. A file is read again only when its size or
mtime changed; its version is a SHA-256 of its bytes, kept in memory only, so a `touch`
or a rewrite with the same content is no change. A profile's settings file (`alice.toml`)
is watched with it, its digest kept apart: the child's own write-back changes the JSON's
digest only. An invalid file is logged once per version with its path and the reason,
never with its content. A profile whose settings say `enabled = false` is valid but
disabled: it gets no child. With a shard, the files that hash to other shards are
counted and skipped unread.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from coordinator.lifecycle.cooldowns import FileStamp
from coordinator.lifecycle.profile_settings import (
    DEFAULT,
    ProfileSettings,
    read_settings_bytes,
    settings_path,
)
from coordinator.lifecycle.profiles import Profile, RejectedProfile, examine
from coordinator.lifecycle.shards import Shard

log = structlog.get_logger("coordinator.lifecycle.watch")


@dataclass(frozen=True, slots=True)
class ProfileVersion:
    """One valid profile file as last read."""

    profile: Profile
    stamp: FileStamp
    digest: str
    settings_digest: str | None = None  # None: no settings file


@dataclass(frozen=True, slots=True)
class Scan:
    valid: dict[str, ProfileVersion]  # by profile name
    rejected: dict[str, RejectedProfile]  # by file stem
    disabled: dict[str, ProfileVersion] = field(default_factory=dict)  # valid, `enabled = false`
    skipped: int = 0  # files that other shards run


@dataclass(frozen=True, slots=True)
class _Seen:
    stamp: FileStamp
    digest: str
    problem: str | None
    settings_stamp: FileStamp | None = None
    settings_digest: str | None = None
    settings: ProfileSettings = DEFAULT


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
        disabled: dict[str, ProfileVersion] = {}
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
            if version.problem is not None:
                rejected[path.stem] = RejectedProfile(path, version.problem)
                continue
            profile = Profile(path.stem, path, version.settings)
            found = ProfileVersion(profile, version.stamp, version.digest, version.settings_digest)
            (valid if version.settings.enabled else disabled)[path.stem] = found
        self._seen = seen
        return Scan(valid=valid, rejected=rejected, disabled=disabled, skipped=skipped)

    def _read(self, path: Path, *, quiet: bool) -> _Seen | None:
        stamp = FileStamp.of(path)
        if stamp is None:
            return None
        settings_stamp = FileStamp.of(settings_path(path))
        known = self._seen.get(path)
        if known is not None and known.stamp == stamp and known.settings_stamp == settings_stamp:
            return known
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return None
        try:
            settings_bytes = read_settings_bytes(path)
        except OSError:
            settings_bytes = b""  # unreadable now: examine() below says why
        settings_digest = hashlib.sha256(settings_bytes).hexdigest() if settings_bytes is not None else None
        found = examine(path)
        if (
            found.problem is not None
            and not quiet
            and (known is None or (known.digest, known.settings_digest) != (digest, settings_digest))
        ):
            log.warning("profile_rejected", path=str(path), reason=found.problem)
        return _Seen(stamp, digest, found.problem, settings_stamp, settings_digest, found.settings or DEFAULT)

    def _cannot_list(self, problem: str) -> None:
        if self._folder_problem != problem:
            log.warning(
                "profiles_folder_unavailable",
                folder=str(self.folder),
                problem=problem,
                effect="children keep running as they are until the folder is back",
            )
            self._folder_problem = problem
