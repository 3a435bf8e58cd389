"""Discovery and validation of auth profiles (Playwright storage-state files).

A profile file holds live session cookies: nothing here ever logs, prints or returns a
cookie's value. A bad file is reported with its path and the reason, never its content.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The name becomes a child id, a log file name, a URL segment and a metric label.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    path: Path


@dataclass(frozen=True, slots=True)
class RejectedProfile:
    path: Path
    reason: str


@dataclass(frozen=True, slots=True)
class Discovery:
    profiles: tuple[Profile, ...]
    rejected: tuple[RejectedProfile, ...]


def discover(folder: Path) -> Discovery:
    """Every `*.json` directly in `folder`, sorted by name, split into valid and rejected."""
    if not folder.is_dir():
        raise FileNotFoundError(f"profiles folder {folder} does not exist")
    profiles: list[Profile] = []
    rejected: list[RejectedProfile] = []
    for path in sorted(folder.glob("*.json")):
        reason = problem_with(path)
        if reason is None:
            profiles.append(Profile(name=path.stem, path=path))
        else:
            rejected.append(RejectedProfile(path=path, reason=reason))
    return Discovery(profiles=tuple(profiles), rejected=tuple(rejected))


def name_problem(name: str) -> str | None:
    if _NAME.match(name):
        return None
    return "a name is 1-64 letters, digits, '.', '_' or '-' (it names the child, its log and its URL)"


def problem_with(path: Path) -> str | None:
    """Why `path` is not a usable profile, or None if it is."""
    if problem := name_problem(path.stem):
        return f"{problem}; rename the file"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot be read: {exc.__class__.__name__}: {getattr(exc, 'strerror', None) or exc}"
    try:
        state = json.loads(text)
    except ValueError as exc:
        # The position is useful; the message of json never quotes the document itself.
        return f"not valid JSON ({exc})"
    return _storage_state_problem(state)


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
