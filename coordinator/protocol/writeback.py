"""The write-back record: which versions of its profile file a child wrote itself.

A child writes refreshed cookies back to its profile file, and the coordinator watches
that file to restart a child whose profile a user replaced. So that the child's own
writes do not restart it, the child first adds the SHA-256 of the bytes it is about to
write to this record (a small JSON file in its working directory, whose path the
coordinator passes as `--write-back-record`), then replaces the profile file. When the
watcher sees a new version, the coordinator looks the version's digest up here: found,
the child wrote it; not found, someone else did.

Why a digest of the exact bytes rather than a file's mtime or inode: it holds on any file
system (mounted volumes report mtimes and inodes loosely), no timing matters (the record
is written before the file), and a user's file is recognised as theirs even if it is
written a moment after the child's. Only digests go in, never content: a digest of a
file full of random cookies gives nothing away. Stdlib only: both processes import it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Final

VERSION: Final = 1
# Digests kept: the watcher may read the file a few writes late; older ones are of no use.
KEEP: Final = 8


def digest(data: bytes) -> str:
    """The version of a profile file's bytes, as the watcher and the record name it."""
    return hashlib.sha256(data).hexdigest()


def read_record(path: Path) -> tuple[str, ...]:
    """The digests in the record at `path`, newest last; none if it is missing or unreadable."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return ()
    found = document.get("sha256") if isinstance(document, dict) else None
    if not isinstance(found, list):
        return ()
    return tuple(item for item in found if isinstance(item, str))


def add_to_record(path: Path, version: str) -> None:
    """Add `version` to the record at `path`, atomically; raises OSError if it cannot be written."""
    kept = [item for item in read_record(path) if item != version][-(KEEP - 1) :]
    write_atomically(path, json.dumps({"version": VERSION, "sha256": [*kept, version]}).encode())


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data`: a temporary file in the same folder with `mode` from its
    creation, written and flushed to disk, then renamed over `path`, then the folder flushed.

    A crash at any point leaves the old file or the new one, never part of one; a leftover
    temporary file is named `.NAME.*.tmp` (not `*.json`), so no watcher takes it for a profile.
    """
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    # The rename is durable once the folder's entry is on disk; some file systems refuse.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
