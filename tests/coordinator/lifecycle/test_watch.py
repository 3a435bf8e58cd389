"""Polling the profiles folder: versions by content, rejected files logged once per version."""

from __future__ import annotations

import json
import os
from pathlib import Path

from structlog.testing import capture_logs

from coordinator.lifecycle.watch import ProfileWatcher

STATE = {"cookies": [{"name": "sid", "value": "SECRET-VALUE", "domain": "example.com"}], "origins": []}


def write(folder: Path, name: str, content: object = STATE) -> Path:
    path = folder / f"{name}.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_a_scan_lists_valid_and_rejected_files(tmp_path: Path) -> None:
    write(tmp_path, "alpha")
    write(tmp_path, "broken", "{nope")
    (tmp_path / "notes.txt").write_text("ignored")
    scan = ProfileWatcher(tmp_path).scan()
    assert scan is not None
    assert set(scan.valid) == {"alpha"}
    assert scan.valid["alpha"].profile.path == tmp_path / "alpha.json"
    assert set(scan.rejected) == {"broken"}
    assert "not valid JSON" in scan.rejected["broken"].reason


def test_a_version_changes_with_the_content_not_with_the_mtime(tmp_path: Path) -> None:
    path = write(tmp_path, "alpha")
    watcher = ProfileWatcher(tmp_path)
    first = watcher.scan()
    assert first is not None
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # a touch
    touched = watcher.scan()
    assert touched is not None
    assert touched.valid["alpha"].digest == first.valid["alpha"].digest
    assert touched.valid["alpha"].stamp != first.valid["alpha"].stamp
    write(tmp_path, "alpha", {**STATE, "origins": [{"origin": "https://example.com"}]})
    changed = watcher.scan()
    assert changed is not None
    assert changed.valid["alpha"].digest != first.valid["alpha"].digest


def test_a_removed_file_leaves_the_scan(tmp_path: Path) -> None:
    path = write(tmp_path, "alpha")
    write(tmp_path, "beta")
    watcher = ProfileWatcher(tmp_path)
    watcher.scan()
    path.unlink()
    scan = watcher.scan()
    assert scan is not None and set(scan.valid) == {"beta"}


def test_a_rejected_file_is_logged_once_per_version_without_its_content(tmp_path: Path) -> None:
    write(tmp_path, "bad", '{"cookies": "SECRET-VALUE"}')
    watcher = ProfileWatcher(tmp_path)
    with capture_logs() as logs:
        watcher.scan()
        watcher.scan()
    assert [e["event"] for e in logs] == ["profile_rejected"]
    assert "SECRET-VALUE" not in json.dumps(logs)
    write(tmp_path, "bad", '{"cookies": 1}')
    with capture_logs() as logs:
        watcher.scan()
    assert [e["event"] for e in logs] == ["profile_rejected"]
    write(tmp_path, "bad")  # fixed: valid now, nothing to report
    with capture_logs() as logs:
        scan = watcher.scan()
    assert logs == [] and scan is not None and "bad" in scan.valid


def test_a_quiet_scan_does_not_log_what_startup_reported(tmp_path: Path) -> None:
    write(tmp_path, "bad", "[]")
    watcher = ProfileWatcher(tmp_path)
    with capture_logs() as logs:
        watcher.scan(quiet=True)
        watcher.scan()
    assert logs == []


def test_a_missing_folder_changes_nothing_and_is_logged_once(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    watcher = ProfileWatcher(folder)
    with capture_logs() as logs:
        assert watcher.scan() is None
        assert watcher.scan() is None
    assert [e["event"] for e in logs] == ["profiles_folder_unavailable"]
    folder.mkdir()
    write(folder, "alpha")
    with capture_logs() as logs:
        scan = watcher.scan()
    assert scan is not None and set(scan.valid) == {"alpha"}
    assert [e["event"] for e in logs] == ["profiles_folder_back"]


def test_the_settings_file_is_watched_with_its_profile(tmp_path: Path) -> None:
    write(tmp_path, "alpha")
    settings = tmp_path / "alpha.toml"
    watcher = ProfileWatcher(tmp_path)
    first = watcher.scan()
    assert first is not None and first.valid["alpha"].settings_digest is None
    settings.write_text("weight = 3\n")
    weighted = watcher.scan()
    assert weighted is not None
    version = weighted.valid["alpha"]
    # Its own digest: a write-back of the JSON is told apart from a change of settings.
    assert version.digest == first.valid["alpha"].digest and version.settings_digest is not None
    assert version.profile.settings.weight == 3
    settings.write_text("enabled = false\n")
    disabled = watcher.scan()
    assert disabled is not None and set(disabled.valid) == set() and set(disabled.disabled) == {"alpha"}
    with capture_logs() as logs:
        settings.write_text('proxy = "http://u:SECRET-PW@host"\n')
        for _ in range(2):
            bad = watcher.scan()
            assert bad is not None and set(bad.rejected) == {"alpha"}
    assert [entry["reason"] for entry in logs if entry["event"] == "profile_rejected"] == [
        f"settings file {settings}: 'proxy' needs a port (host:port)"
    ]
    settings.unlink()
    back = watcher.scan()
    assert back is not None and back.valid["alpha"].digest == first.valid["alpha"].digest
