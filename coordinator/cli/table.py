"""Plain text tables: columns aligned with spaces, one line per row, for terminals and grep."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

_SPACE = re.compile(r"\s+")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Collection[int] = ()) -> str:
    """`headers` over `rows`, each column as wide as its widest cell; columns in `right` right-aligned."""
    grid = [list(headers), *(list(row) for row in rows)]
    widths = [max(len(row[column]) for row in grid) for column in range(len(headers))]
    lines = []
    for row in grid:
        cells = [
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def clip(text: str, width: int) -> str:
    """`text` on one line (runs of white space become one space), cut to `width` with "..."."""
    line = _SPACE.sub(" ", text).strip()
    line = "".join(char if char.isprintable() else "?" for char in line)
    return line if len(line) <= width else line[: width - 3].rstrip() + "..."
