"""The write-back of a session to its profile file, on a real temporary folder.

Atomic (a reader and a crash only ever find the old file or the new one), mode 600,
only when due and changed, never over someone else's file, recorded before it is written.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from child.engines.profile_writer import ProfileWriteError, ProfileWriter, WriterState
from coordinator.protocol.writeback import digest, read_record
from tests.support.lifecycle import FakeClock

COOKIE = {"name": "sid", "value": "SECRET-1", "domain": "example.com", "path": "/"}
STATE = {"cookies": [COOKIE], "origins": []}


class Session:
    """A stand-in for a browser context: its storage state is whatever the test sets."""

    def __init__(self, state: Mapping[str, Any]) -> None:
        self.state = dict(state)
        self.looks = 0

    async def storage_state(self) -> Mapping[str, Any]:
        self.looks += 1
        return self.state

    def refresh(self, value: str) -> None:
        self.state = {**self.state, "cookies": [{**COOKIE, "value": value}]}


def profile(tmp_path: Path, state: Mapping[str, Any] = STATE) -> Path:
    path = tmp_path / "alice.json"
    path.write_text(json.dumps(state))
    path.chmod(0o644)
    return path


def writer(path: Path, clock: FakeClock | None = None, **options: Any) -> ProfileWriter:
    options.setdefault("every_s", 0)
    options.setdefault("every_requests", 0)
    record = path.parent / "work" / "record.json"
    return ProfileWriter(path, record=record, clock=clock or FakeClock(), **options)


async def test_a_write_replaces_the_file_with_the_session_mode_600_recorded_first(tmp_path: Path) -> None:
    path = profile(tmp_path)
    (tmp_path / "work").mkdir()
    saver = writer(path, every_requests=1)
    assert saver.read() == STATE
    session = Session(STATE)
    session.refresh("SECRET-2")
    with capture_logs() as logs:
        assert await saver.write(session) is True
    written = path.read_bytes()
    assert json.loads(written) == session.state
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_record(tmp_path / "work" / "record.json") == (digest(written),)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert "SECRET" not in repr(logs)
    assert [e["event"] for e in logs] == ["profile_written"]


async def test_it_writes_when_due_by_requests_or_by_time_and_only_what_changed(tmp_path: Path) -> None:
    path = profile(tmp_path)
    (tmp_path / "work").mkdir()
    clock = FakeClock()
    saver = writer(path, clock, every_s=600, every_requests=3)
    saver.read()
    session = Session(STATE)
    session.refresh("v2")
    assert [await saver.maybe_write(session) for _ in range(3)] == [False, False, True]
    assert session.looks == 1, "the session is not even looked at before a write is due"
    assert [await saver.maybe_write(session) for _ in range(3)] == [False, False, False]  # unchanged
    session.refresh("v3")
    clock.advance(601)
    assert await saver.maybe_write(session) is True  # by time, after one request
    assert json.loads(path.read_text())["cookies"][0]["value"] == "v3"
    assert saver.written == 2


async def test_a_session_without_cookies_is_never_written(tmp_path: Path) -> None:
    path = profile(tmp_path)
    saver = writer(path, every_requests=1)
    saver.read()
    before = path.read_bytes()
    assert await saver.maybe_write(Session({"cookies": [], "origins": []})) is False
    assert path.read_bytes() == before


@pytest.mark.parametrize("change", ["replaced", "removed"])
async def test_a_file_someone_else_replaced_or_removed_is_left_alone(tmp_path: Path, change: str) -> None:
    path = profile(tmp_path)
    (tmp_path / "work").mkdir()
    saver = writer(path, every_requests=1)
    saver.read()
    if change == "replaced":
        path.write_text(json.dumps({**STATE, "origins": [{"origin": "https://x", "localStorage": []}]}))
    else:
        path.unlink()
    theirs = path.read_bytes() if path.exists() else None
    session = Session(STATE)
    session.refresh("stale")
    assert await saver.write(session) is False
    assert (path.read_bytes() if path.exists() else None) == theirs
    assert saver.state is WriterState.YIELDED
    assert read_record(tmp_path / "work" / "record.json") == ()
    session.refresh("later")
    assert await saver.write(session) is False, "a writer that yielded writes no more"


async def test_a_folder_that_cannot_be_written_is_reported_once_and_the_child_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = profile(tmp_path)
    saver = ProfileWriter(path, every_s=0, every_requests=1)  # no record: nothing else to write

    def read_only(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    saver.read()
    session = Session(STATE)
    with capture_logs() as logs:
        for value in ("a", "b", "c"):
            session.refresh(value)
            assert await saver.maybe_write(session) is False
    assert [e["event"] for e in logs] == ["profile_write_failed"]
    assert "Read-only" in logs[0]["error"]
    assert json.loads(path.read_text()) == STATE and saver.state is WriterState.ACTIVE


def test_a_profile_that_is_not_a_storage_state_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "alice.json"
    path.write_text("[1, 2]")
    with pytest.raises(ProfileWriteError, match="not a storage-state object"):
        writer(path).read()


async def test_the_interval_writes_on_its_own_until_cancelled(tmp_path: Path) -> None:
    path = profile(tmp_path)
    saver = ProfileWriter(path, every_s=0.02, every_requests=0)
    saver.read()

    class Rotating(Session):
        async def storage_state(self) -> Mapping[str, Any]:
            self.refresh(f"v{self.looks}")
            return await super().storage_state()

    task = asyncio.create_task(saver.run(Rotating(STATE)))
    try:
        deadline = time.monotonic() + 5
        while saver.written < 3:
            assert time.monotonic() < deadline, "the interval wrote fewer than 3 times in 5s"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# A process that writes two versions of a big profile in turn, for ever, as the writer does.
_WRITER_LOOP = """
import sys
from pathlib import Path
from coordinator.protocol.writeback import write_atomically
path, versions = Path(sys.argv[1]), [Path(v).read_bytes() for v in sys.argv[2:]]
print("writing", flush=True)
n = 0
while True:
    write_atomically(path, versions[n % 2])
    n += 1
"""


def test_a_reader_and_a_crash_mid_write_only_ever_find_a_whole_version(tmp_path: Path) -> None:
    versions = []
    for n in range(2):  # ~1 MB each: a write takes long enough to be caught in the middle
        cookies = [{"name": f"c{i}", "value": f"{n}" * 200, "domain": "x"} for i in range(4000)]
        source = tmp_path / f"v{n}.src"
        source.write_text(json.dumps({"cookies": cookies, "origins": []}))
        versions.append(source.read_bytes())
    path = tmp_path / "profiles" / "alice.json"
    path.parent.mkdir()
    path.write_bytes(versions[0])
    seen = 0
    for crash in range(4):
        process = subprocess.Popen(
            [sys.executable, "-c", _WRITER_LOOP, str(path), *(str(tmp_path / f"v{n}.src") for n in range(2))],
            stdout=subprocess.PIPE,
        )
        try:
            assert process.stdout is not None and process.stdout.readline() == b"writing\n"
            deadline = time.monotonic() + 0.3 + 0.1 * crash
            while time.monotonic() < deadline:  # a reader meanwhile: never a partial file
                assert path.read_bytes() in versions
                seen += 1
        finally:
            os.kill(process.pid, signal.SIGKILL)  # a crash, at whatever point the write is
            process.wait(timeout=10)
        assert path.read_bytes() in versions, "a crash left a partial profile"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        # What a crash may leave is a temporary file no watcher takes for a profile.
        assert sorted(p.name for p in path.parent.glob("*.json")) == ["alice.json"]
    assert seen > 10
