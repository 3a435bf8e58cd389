"""Keys as the CLI takes them: comma-separated in --api-key, one a line in --api-key-file
(and the same for --admin-key and --admin-key-file).

`run` accepts all of them; `status` sends the first. Blank lines and `#` comments in the
file are skipped. A key is never printed, not even in an error.
"""

from __future__ import annotations

from pathlib import Path


class KeyFileError(Exception):
    """The key file could not be read; the message names the file, never a key."""


def read_api_keys(listed: str | None, file: Path | None = None, *, kind: str = "API") -> tuple[str, ...]:
    """The keys of `listed` (comma-separated), then those of `file`, in order; `kind` names them in errors."""
    keys = [key.strip() for key in (listed or "").split(",") if key.strip()]
    if file is not None:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise KeyFileError(f"cannot read the {kind} key file {file}: {exc.strerror or exc}") from None
        keys += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return tuple(keys)
