"""`coordinator profiles`: the profile files of a folder, where each sits, and whether it can serve.

It shows what is safe to show: names, places, counts and dates, never a cookie's name or
value, and the settings of each (`alice.toml`) with the proxy's credentials masked. The
reading and the checks are `profiles.examine`; this module lists and formats.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.cli.table import table
from coordinator.lifecycle.profile_settings import DEFAULT, ProfileSettings
from coordinator.lifecycle.profiles import ProfileFile, examine

ACTIVE = "active"
SAVED = "saved"
HEADERS = ("NAME", "WHERE", "COOKIES", "EARLIEST EXPIRY", "STATUS", "SETTINGS")
_ORDER = {ACTIVE: 0, SAVED: 1}


@dataclass(frozen=True, slots=True)
class Entry:
    where: str  # ACTIVE or SAVED
    file: ProfileFile


def scan(folder: Path) -> list[Entry]:
    """The `*.json` of FOLDER/active and FOLDER/saved, and of FOLDER itself (as active).

    Active ones first, then saved ones, each by name. FileNotFoundError if FOLDER is none.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"profiles folder {folder} does not exist")
    places = ((folder, ACTIVE), (folder / ACTIVE, ACTIVE), (folder / SAVED, SAVED))
    entries = [
        Entry(where, examine(path))
        for place, where in places
        if place.is_dir()
        for path in place.glob("*.json")
    ]
    return sorted(entries, key=lambda entry: (_ORDER[entry.where], entry.file.name, str(entry.file.path)))


def render(entries: list[Entry], folder: Path) -> str:
    if not entries:
        return f"no profile files (*.json) in {folder}, {folder / ACTIVE} or {folder / SAVED}"
    rows = [
        [
            entry.file.name,
            entry.where,
            "-" if entry.file.cookies is None else str(entry.file.cookies),
            expiry_text(entry.file),
            status_text(entry.file),
            settings_text(entry.file.settings),
        ]
        for entry in entries
    ]
    return table(HEADERS, rows, right={2})


def status_text(file: ProfileFile) -> str:
    if file.problem is not None:
        return f"invalid: {file.problem}"
    return "valid, disabled" if file.disabled else "valid"


def settings_text(settings: ProfileSettings | None) -> str:
    """The settings that differ from the defaults, in one line; "-" for none (or no file)."""
    if settings is None or settings == DEFAULT:
        return "-"
    parts = []
    if settings.proxy is not None:
        parts.append(f"proxy {settings.proxy.masked()}")
    if settings.locale:
        parts.append(f"locale {settings.locale}")
    if settings.timezone:
        parts.append(f"timezone {settings.timezone}")
    if settings.models is not None:
        parts.append(f"models {','.join(settings.models)}")
    if settings.weight != 1:
        parts.append(f"weight {settings.weight:g}")
    if settings.daily_limits:
        limits = ",".join(f"{model}={limit}" for model, limit in settings.daily_limits.items())
        parts.append(f"daily {limits}")
    if not settings.enabled:
        parts.append("enabled false")
    return "; ".join(parts)


def expiry_text(file: ProfileFile) -> str:
    """The date (YYYY-MM-DD, UTC); "session" when only session cookies; "-" when nothing to say."""
    if file.earliest_expiry is not None:
        return file.earliest_expiry.isoformat()
    return "session" if file.cookies else "-"


def to_json(entries: list[Entry]) -> str:
    return json.dumps([_record(entry) for entry in entries], indent=2)


def _record(entry: Entry) -> dict[str, Any]:
    file = entry.file
    return {
        "name": file.name,
        "where": entry.where,
        "path": str(file.path),
        "valid": file.problem is None,
        "problem": file.problem,
        "cookies": file.cookies,
        "earliest_expiry": file.earliest_expiry.isoformat() if file.earliest_expiry else None,
        "enabled": not file.disabled if file.problem is None else None,
        "settings": file.settings.describe() if file.settings is not None else None,
    }
