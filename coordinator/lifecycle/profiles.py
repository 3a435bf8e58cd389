"""Discovery and validation of auth profiles (Playwright storage-state files).

A profile file holds live session cookies: nothing here ever logs, prints or returns a
cookie's value. A bad file is reported with its path and the reason, never its content.
A profile's settings file (`alice.toml` beside `alice.json`, `profile_settings`) is part
of the profile: when it is bad, the profile is rejected with the settings file's reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from coordinator.lifecycle.profile_settings import DEFAULT, ProfileSettings, SettingsError
from coordinator.lifecycle.profile_settings import load as load_settings
from coordinator.lifecycle.shards import Shard

# The name becomes a child id, a log file name, a URL segment and a metric label.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    path: Path
    settings: ProfileSettings = DEFAULT


@dataclass(frozen=True, slots=True)
class RejectedProfile:
    path: Path
    reason: str


@dataclass(frozen=True, slots=True)
class ProfileFile:
    """What may be said about one profile file: counts and dates, never a cookie's name or value."""

    path: Path
    problem: str | None  # None: a usable profile
    cookies: int | None = None  # counted for a usable profile only
    earliest_expiry: date | None = None  # None: no cookie that expires (session cookies only)
    settings: ProfileSettings | None = None  # those of a usable profile

    @property
    def disabled(self) -> bool:
        return self.settings is not None and not self.settings.enabled

    @property
    def name(self) -> str:
        return self.path.stem


@dataclass(frozen=True, slots=True)
class Discovery:
    profiles: tuple[Profile, ...]
    rejected: tuple[RejectedProfile, ...]
    disabled: tuple[Profile, ...] = ()  # valid, but `enabled = false` in their settings
    skipped: tuple[str, ...] = ()  # the names of the files another shard runs


def discover(folder: Path, shard: Shard | None = None) -> Discovery:
    """Every `*.json` directly in `folder`, sorted by name, split into valid, rejected and disabled.

    With a `shard`, the files of other shards are skipped unread: their shard reports them."""
    if not folder.is_dir():
        raise FileNotFoundError(f"profiles folder {folder} does not exist")
    profiles: list[Profile] = []
    rejected: list[RejectedProfile] = []
    disabled: list[Profile] = []
    skipped: list[str] = []
    for path in sorted(folder.glob("*.json")):
        if shard is not None and not shard.owns(path.stem):
            skipped.append(path.stem)
            continue
        found = examine(path)
        if found.problem is not None:
            rejected.append(RejectedProfile(path=path, reason=found.problem))
            continue
        profile = Profile(name=path.stem, path=path, settings=found.settings or DEFAULT)
        (disabled if found.disabled else profiles).append(profile)
    return Discovery(
        profiles=tuple(profiles), rejected=tuple(rejected), disabled=tuple(disabled), skipped=tuple(skipped)
    )


def name_problem(name: str) -> str | None:
    if _NAME.match(name):
        return None
    return "a name is 1-64 letters, digits, '.', '_' or '-' (it names the child, its log and its URL)"


def problem_with(path: Path) -> str | None:
    """Why `path` is not a usable profile, or None if it is."""
    return examine(path).problem


def examine(path: Path) -> ProfileFile:
    """Validate `path` and, if it is usable, count its cookies and find their earliest expiry.

    The file is read once; what comes back holds no cookie name or value.
    """
    if problem := name_problem(path.stem):
        return ProfileFile(path, f"{problem}; rename the file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return ProfileFile(
            path, f"cannot be read: {exc.__class__.__name__}: {getattr(exc, 'strerror', None) or exc}"
        )
    try:
        state = json.loads(text)
    except ValueError as exc:
        # The position is useful; the message of json never quotes the document itself.
        return ProfileFile(path, f"not valid JSON ({exc})")
    if problem := _storage_state_problem(state):
        return ProfileFile(path, problem)
    try:
        settings = load_settings(path)
    except SettingsError as exc:
        return ProfileFile(path, str(exc))
    cookies: list[dict[str, Any]] = state["cookies"]
    return ProfileFile(
        path, None, cookies=len(cookies), earliest_expiry=earliest_expiry(cookies), settings=settings
    )


def earliest_expiry(cookies: list[dict[str, Any]]) -> date | None:
    """The UTC date on which the first of `cookies` expires; None if none of them expires.

    `expires` is in Unix seconds, as Playwright writes it; -1 or no `expires` marks a
    session cookie, which lives as long as the browser and so never expires here.
    """
    moments = [
        expires
        for cookie in cookies
        if isinstance(expires := cookie.get("expires"), int | float)
        and not isinstance(expires, bool)
        and expires > 0
    ]
    if not moments:
        return None
    try:
        return datetime.fromtimestamp(min(moments), tz=UTC).date()
    except (OverflowError, OSError, ValueError):
        return date.max  # beyond what a date can hold: as good as never


def _storage_state_problem(state: Any) -> str | None:
    if not isinstance(state, dict):
        return "not a Playwright storage state: the top level must be an object with 'cookies' and 'origins'"
    cookies = state.get("cookies")
    if not isinstance(cookies, list):
        return "not a Playwright storage state: 'cookies' must be a list"
    for index, cookie in enumerate(cookies):
        if not isinstance(cookie, dict):
            return f"cookies[{index}] must be an object"
        for field in ("name", "value", "domain"):
            if not isinstance(cookie.get(field), str):
                return f"cookies[{index}] has no string '{field}'"
    origins = state.get("origins", [])
    if not isinstance(origins, list):
        return "not a Playwright storage state: 'origins' must be a list"
    for index, origin in enumerate(origins):
        if not isinstance(origin, dict) or not isinstance(origin.get("origin"), str):
            return f"origins[{index}] must be an object with a string 'origin'"
        if not isinstance(origin.get("localStorage", []), list):
            return f"origins[{index}].localStorage must be a list"
    return None
