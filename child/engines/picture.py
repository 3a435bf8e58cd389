"""A PNG drawn in code, for the mock engine's screenshot: no image library, no browser.

The picture is a sketch of a page: a header band in the colour of the engine's state, a
grey chat area, and one block per answer generated so far (up to a row's worth), so a
viewer of the dashboard sees a mock child's picture change as it serves.
"""

from __future__ import annotations

import struct
import zlib

Colour = tuple[int, int, int]

WIDTH, HEIGHT = 320, 200
_HEADER = 36
_BLOCK, _GAP = 16, 6
_BACKGROUND: Colour = (246, 247, 249)
_CHAT: Colour = (225, 229, 235)
_BLOCK_COLOUR: Colour = (66, 133, 244)


def page_png(header: Colour, blocks: int) -> bytes:
    """A WIDTH x HEIGHT RGB PNG: a `header` band, a chat area and `blocks` answer blocks."""
    per_row = (WIDTH - 2 * _GAP) // (_BLOCK + _GAP)
    shown = max(0, min(blocks, per_row * 4))
    rows = []
    for y in range(HEIGHT):
        line = bytearray()
        for x in range(WIDTH):
            line += bytes(_colour_at(x, y, header, shown, per_row))
        rows.append(b"\x00" + bytes(line))  # filter type 0 for every scanline
    return encode_png(WIDTH, HEIGHT, b"".join(rows))


def _colour_at(x: int, y: int, header: Colour, shown: int, per_row: int) -> Colour:
    if y < _HEADER:
        return header
    top = _HEADER + _GAP
    if not (_GAP <= x < WIDTH - _GAP and top <= y < HEIGHT - _GAP):
        return _BACKGROUND
    column, x_in = divmod(x - 2 * _GAP, _BLOCK + _GAP)
    row, y_in = divmod(y - top - _GAP, _BLOCK + _GAP)
    inside = x >= 2 * _GAP and y >= top + _GAP and x_in < _BLOCK and y_in < _BLOCK
    if inside and column < per_row and row * per_row + column < shown:
        return _BLOCK_COLOUR
    return _CHAT


def encode_png(width: int, height: int, scanlines: bytes) -> bytes:
    """PNG bytes for 8-bit RGB `scanlines` (each row prefixed with its filter byte)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(scanlines, 6))
        + chunk(b"IEND", b"")
    )
