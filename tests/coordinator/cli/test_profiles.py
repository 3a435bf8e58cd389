"""`coordinator profiles DIR`: names, places, validity, cookie counts and expiry dates; never a secret."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from coordinator.cli import profiles as inventory
from coordinator.lifecycle.profiles import earliest_expiry, examine

SECRET = "SECRET-VALUE-123"
COOKIE_NAME = "COOKIE-NAME-XYZ"


def noon(day: date) -> float:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp()


def cookie(expires: float | None = None, value: str = SECRET) -> dict[str, Any]:
    found: dict[str, Any] = {"name": COOKIE_NAME, "value": value, "domain": ".example.com", "path": "/"}
    if expires is not None:
        found["expires"] = expires
    return found


def write(folder: Path, name: str, content: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.fixture
def shelf(tmp_path: Path) -> Path:
    """active/: a valid profile and an invalid one; saved/: a session-only profile and broken JSON."""
    root = tmp_path / "profiles"
    cookies = [
        cookie(noon(date(2031, 3, 15))),
        cookie(-1),
        cookie(noon(date(2030, 7, 1)) + 0.5),  # Playwright writes floats
        cookie(),
    ]
    write(root / "active", "alice.json", {"cookies": cookies, "origins": []})
    write(root / "active", "mallory.json", {"cookies": [{"name": COOKIE_NAME, "value": SECRET}]})
    write(root / "saved", "bob.json", {"cookies": [cookie(-1), cookie()], "origins": []})
    write(root / "saved", "carol.json", '{"cookies": [{"name": "' + COOKIE_NAME + '", "value": "' + SECRET)
    return root


def profiles(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coordinator", "profiles", *args], capture_output=True, text=True, timeout=60
    )


def test_profiles_table(shelf: Path) -> None:
    done = profiles(str(shelf))
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["NAME", "WHERE", "COOKIES", "EARLIEST", "EXPIRY", "STATUS", "SETTINGS"]
    by_name = {row.split()[0]: row for row in rows}
    assert list(by_name) == ["alice", "mallory", "bob", "carol"]  # active first, then saved
    assert by_name["alice"].split() == ["alice", "active", "4", "2030-07-01", "valid", "-"]
    assert by_name["bob"].split() == ["bob", "saved", "2", "session", "valid", "-"]
    assert by_name["mallory"].split()[:4] == ["mallory", "active", "-", "-"]
    assert "invalid: cookies[0] has no string 'domain'" in by_name["mallory"]
    assert "invalid: not valid JSON" in by_name["carol"]
    assert header.index("STATUS") == by_name["bob"].index("valid")
    assert SECRET not in done.stdout + done.stderr
    assert COOKIE_NAME not in done.stdout + done.stderr


def test_profiles_json(shelf: Path) -> None:
    done = profiles(str(shelf), "--json")
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert COOKIE_NAME not in done.stdout + done.stderr
    records = {record["name"]: record for record in json.loads(done.stdout)}
    assert records["alice"] == {
        "name": "alice",
        "where": "active",
        "path": str(shelf / "active" / "alice.json"),
        "valid": True,
        "problem": None,
        "cookies": 4,
        "earliest_expiry": "2030-07-01",
        "enabled": True,
        "settings": {
            "proxy": None,
            "locale": None,
            "timezone": None,
            "models": None,
            "weight": 1.0,
            "daily_limits": {},
            "enabled": True,
        },
    }
    assert records["bob"]["earliest_expiry"] is None and records["bob"]["cookies"] == 2
    assert records["carol"]["where"] == "saved" and records["carol"]["valid"] is False
    assert "not valid JSON" in records["carol"]["problem"]


def test_files_directly_in_the_folder_are_active(tmp_path: Path) -> None:
    write(tmp_path, "dave.json", {"cookies": [], "origins": []})
    entries = inventory.scan(tmp_path)
    assert [(e.file.name, e.where) for e in entries] == [("dave", "active")]
    assert inventory.expiry_text(entries[0].file) == "-"  # no cookies: nothing to say


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    done = profiles(str(tmp_path))
    assert done.returncode == 0
    assert done.stdout.startswith(f"no profile files (*.json) in {tmp_path}")
    assert profiles(str(tmp_path), "--json").stdout.strip() == "[]"
    missing = profiles(str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr


@pytest.mark.parametrize(
    ("expires", "expected"),
    [
        ([], None),
        ([None, -1, -1.0], None),
        ([noon(date(2030, 1, 2)), -1], date(2030, 1, 2)),
        ([noon(date(2030, 1, 2)), noon(date(2029, 12, 31))], date(2029, 12, 31)),
        (["2030-01-01", True, 0], None),  # not Unix seconds: not an expiry
        ([1e300], date.max),
    ],
)
def test_earliest_expiry(expires: list[Any], expected: date | None) -> None:
    assert earliest_expiry([cookie(value) for value in expires]) == expected


def test_examine_holds_no_secret(shelf: Path) -> None:
    for path in sorted(shelf.rglob("*.json")):
        assert SECRET not in repr(examine(path))
        assert COOKIE_NAME not in repr(examine(path))


def test_settings_are_shown_with_the_proxy_masked(shelf: Path) -> None:
    (shelf / "active" / "alice.toml").write_text(
        'proxy = "socks5://alice-user:PROXY-PASS-789@proxy.example.net:1080"\n'
        'locale = "de-DE"\ntimezone = "Europe/Berlin"\nmodels = ["gemini-2.5-pro"]\n'
        'weight = 2\ndaily_limits = { "gemini-2.5-pro" = 100 }\n'
    )
    (shelf / "saved" / "bob.toml").write_text("enabled = false\n")
    (shelf / "active" / "mallory.toml").write_text("enabled = false\n")  # an invalid profile stays so
    done = profiles(str(shelf))
    assert done.returncode == 0, done.stderr
    assert "PROXY-PASS-789" not in done.stdout + done.stderr
    assert "alice-user" not in done.stdout + done.stderr
    header, *rows = done.stdout.splitlines()
    by_name = {row.split()[0]: row for row in rows}
    assert by_name["alice"][header.index("SETTINGS") :] == (
        "proxy socks5://***@proxy.example.net:1080; locale de-DE; timezone Europe/Berlin; "
        "models gemini-2.5-pro; weight 2; daily gemini-2.5-pro=100"
    )
    assert "valid, disabled" in by_name["bob"] and "enabled false" in by_name["bob"]
    assert "invalid: cookies[0]" in by_name["mallory"]
    listed = profiles(str(shelf), "--json")
    assert "PROXY-PASS-789" not in listed.stdout
    records = {record["name"]: record for record in json.loads(listed.stdout)}
    assert records["alice"]["settings"]["proxy"] == "socks5://***@proxy.example.net:1080"
    assert records["alice"]["settings"]["daily_limits"] == {"gemini-2.5-pro": 100}
    assert records["bob"]["enabled"] is False and records["bob"]["valid"] is True


def test_a_bad_settings_file_makes_the_profile_invalid(shelf: Path) -> None:
    (shelf / "active" / "alice.toml").write_text('proxy = "ftp://user:PROXY-PASS-789@host:21"\ncolour = 1\n')
    done = profiles(str(shelf))
    assert done.returncode == 0, done.stderr
    row = next(row for row in done.stdout.splitlines() if row.startswith("alice"))
    assert f"invalid: settings file {shelf / 'active' / 'alice.toml'}: unknown key 'colour'" in row
    assert "PROXY-PASS-789" not in done.stdout
