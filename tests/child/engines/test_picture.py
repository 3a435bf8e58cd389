"""The mock's screenshot: a valid PNG drawn in code, which changes as the engine serves."""

from __future__ import annotations

import struct
import zlib

import pytest

from child.engines import picture
from child.engines.base import EngineStarting, Prompt
from child.engines.mock import MockEngine, MockSettings


def decode(png: bytes) -> tuple[int, int, bytes]:
    """Width, height and raw scanlines of an 8-bit RGB PNG, every chunk's CRC checked."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    at, chunks = 8, []
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind, data = png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", png[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + data)
        chunks.append((kind, data))
        at += 12 + length
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour) == (8, 2)
    return width, height, zlib.decompress(chunks[1][1])


def pixel(raw: bytes, width: int, x: int, y: int) -> tuple[int, ...]:
    start = y * (1 + 3 * width) + 1 + 3 * x
    return tuple(raw[start : start + 3])


def test_the_picture_is_a_valid_png_of_its_size_with_the_header_colour() -> None:
    width, height, raw = decode(picture.page_png((1, 2, 3), 0))
    assert (width, height) == (picture.WIDTH, picture.HEIGHT)
    assert len(raw) == height * (1 + 3 * width)
    assert pixel(raw, width, 5, 5) == (1, 2, 3)
    assert pixel(raw, width, 20, 60) == (225, 229, 235)  # the chat area, no block yet


def test_each_answer_adds_a_block() -> None:
    _, _, none = decode(picture.page_png((0, 0, 0), 0))
    _, _, one = decode(picture.page_png((0, 0, 0), 1))
    assert pixel(one, picture.WIDTH, 20, 60) == (66, 133, 244)
    assert none != one


async def test_the_mock_engine_shows_its_state_and_its_answers() -> None:
    engine = MockEngine(MockSettings())
    with pytest.raises(EngineStarting):
        await engine.screenshot()
    await engine.start()
    first = await engine.screenshot()
    assert await engine.screenshot() is first  # drawn once per state and answer count
    prompt = Prompt(model="mock", messages=({"role": "user", "content": "hi"},))
    assert [event async for event in engine.generate(prompt)]
    after = await engine.screenshot()
    assert after != first
    _, _, raw = decode(after)
    assert pixel(raw, picture.WIDTH, 5, 5) == (52, 168, 83)  # ready: green
