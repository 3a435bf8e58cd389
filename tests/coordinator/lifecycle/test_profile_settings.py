"""A profile's settings file: read, checked with the file's path and reason, never a credential shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coordinator.lifecycle.profile_settings import (
    DEFAULT,
    ProfileSettings,
    SettingsError,
    load,
    settings_path,
)
from coordinator.lifecycle.profiles import discover, examine

SECRET = "PROXY-PASS-123"
FULL = f"""
proxy = "socks5://alice:{SECRET}@proxy.example.net:1080"
locale = "de-DE"
timezone = "Europe/Berlin"
models = ["gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-pro"]
weight = 2.5
enabled = true

[daily_limits]
"gemini-2.5-pro" = 100
"gemini-2.5-flash" = 1500
"""


def profile(folder: Path, name: str, settings: str | None = None) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"cookies": [], "origins": []}))
    if settings is not None:
        settings_path(path).write_text(settings)
    return path


def test_beside_the_profile(tmp_path: Path) -> None:
    assert settings_path(tmp_path / "alice.json") == tmp_path / "alice.toml"


def test_no_file_is_the_defaults(tmp_path: Path) -> None:
    settings = load(profile(tmp_path, "alice"))
    assert settings == DEFAULT
    assert (
        settings.proxy,
        settings.models,
        settings.weight,
        dict(settings.daily_limits),
        settings.enabled,
    ) == (
        None,
        None,
        1.0,
        {},
        True,
    )


def test_every_key(tmp_path: Path) -> None:
    settings = load(profile(tmp_path, "alice", FULL))
    assert settings.proxy is not None and settings.proxy.masked() == "socks5://***@proxy.example.net:1080"
    assert (settings.locale, settings.timezone) == ("de-DE", "Europe/Berlin")
    assert settings.models == ("gemini-2.5-pro", "gemini-2.5-flash")  # duplicates once
    assert settings.weight == 2.5
    assert settings.daily_limits == {"gemini-2.5-pro": 100, "gemini-2.5-flash": 1500}
    with pytest.raises(TypeError):
        settings.daily_limits["gemini-2.5-pro"] = 1  # type: ignore[index]
    hash(settings)  # a Profile holding them stays hashable
    assert SECRET not in repr(settings) and SECRET not in json.dumps(settings.describe())
    assert settings.describe()["proxy"] == "socks5://***@proxy.example.net:1080"


def test_models_filter_what_the_page_offers() -> None:
    assert ProfileSettings(models=("b", "x")).allowed(("a", "b", "c")) == ("b",)
    assert DEFAULT.allowed(("a", "b")) == ("a", "b")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("colour = 'blue'", "unknown key 'colour'; the keys are proxy, locale"),
        ("proxy = 5", "'proxy' must be a string"),
        (f'proxy = "ftp://u:{SECRET}@h:21"', "'proxy' must start with http://"),
        (f'proxy = "http://u:{SECRET}@h"', "'proxy' needs a port"),
        ("locale = 'not a locale'", "'locale' must be a language tag"),
        ("timezone = 'Mars/Olympus'", "'timezone' 'Mars/Olympus' is not a known IANA time zone"),
        ("timezone = '../../etc/passwd'", "is not a known IANA time zone"),
        ("models = []", "'models' must be a non-empty list"),
        ("models = 'gemini'", "'models' must be a non-empty list"),
        ("models = ['ok', 3]", "'models' must be model ids"),
        ("weight = 0", "'weight' must be a positive number"),
        ("weight = -1.5", "'weight' must be a positive number"),
        ("weight = true", "'weight' must be a positive number"),
        ("weight = nan", "'weight' must be a positive number"),
        ("daily_limits = 5", "'daily_limits' must be a table"),
        ("daily_limits = { m = 0 }", "'daily_limits' for 'm' must be a number of requests, 1 or more"),
        ("daily_limits = { m = 1.5 }", "'daily_limits' for 'm' must be a number of requests"),
        ("daily_limits = { 'bad model!' = 5 }", "'daily_limits' keys must be model ids"),
        ("enabled = 'no'", "'enabled' must be true or false"),
        (f'proxy = "http://u:{SECRET}@h:1" x', "not valid TOML"),
    ],
)
def test_a_bad_file_says_where_and_why(tmp_path: Path, text: str, reason: str) -> None:
    path = profile(tmp_path, "alice", text)
    with pytest.raises(SettingsError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"settings file {tmp_path / 'alice.toml'}: ")
    assert reason in message
    assert SECRET not in message
    # The profile is rejected, with the same reason: never started with defaults.
    assert examine(path).problem == message


def test_not_utf8_and_too_large(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not UTF-8"):
        settings_path(profile(tmp_path, "a")).write_bytes(b"locale = '\xff'")
        load(tmp_path / "a.json")
    settings_path(profile(tmp_path, "b")).write_text("# " + "x" * 70_000)
    with pytest.raises(SettingsError, match="larger than 64 KiB"):
        load(tmp_path / "b.json")


def test_discovery_splits_valid_rejected_and_disabled(tmp_path: Path) -> None:
    profile(tmp_path, "alice", FULL)
    profile(tmp_path, "bob")
    profile(tmp_path, "carol", "enabled = false")
    profile(tmp_path, "dave", "weight = 0")
    found = discover(tmp_path)
    assert [p.name for p in found.profiles] == ["alice", "bob"]
    assert found.profiles[0].settings.weight == 2.5 and found.profiles[1].settings == DEFAULT
    assert [p.name for p in found.disabled] == ["carol"]
    assert [(r.path.name, "'weight'" in r.reason) for r in found.rejected] == [("dave.json", True)]
