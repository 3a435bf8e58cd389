"""Files end to end: the official client sends images and PDFs, the coordinator checks them,
a Chromium child attaches them through the replica's upload flow, and the replica's model
says what reached it (name, type, size, sha256 of the bytes it decoded).

One coordinator with two children serves every test here (browsers are costly).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai.types.chat import ChatCompletionMessageParam
from playwright.sync_api import FilePayload, sync_playwright

from child.engines.browser import find_chromium
from tests.support.coordinator import Coordinator, Runs
from tests.support.sites import Site, site_and_profiles, start

pytestmark = pytest.mark.skipif(
    find_chromium(None, os.environ) is None, reason="no Chromium: `bash scripts/setup.sh` installs it"
)
# Random bytes behind real signatures: a change of one byte on the way shows in the hash.
PNG = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(300_000)
PDF = b"%PDF-1.7\n" + secrets.token_bytes(120_000) + b"\n%%EOF\n"
WAV = b"RIFF" + (36 + 64_000).to_bytes(4, "little") + b"WAVEfmt " + secrets.token_bytes(64_024)


@pytest.fixture(scope="module")
def served(module_runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Coordinator, Site]]:
    folder = tmp_path_factory.mktemp("uploads") / "profiles"
    with site_and_profiles(folder, "--first-token-ms", "60", "--token-ms", "5") as site:
        yield start(module_runs, site, folder), site


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def seen(name: str, mime: str, data: bytes) -> str:
    """How the replica's model names a file it received."""
    return f"{name} ({mime}, {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:12]})"


def image_message(text: str) -> ChatCompletionMessageParam:
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": data_url("image/png", PNG)}},
        ],
    }


def pdf_part(name: str) -> Any:
    return {"type": "file", "file": {"filename": name, "file_data": data_url("application/pdf", PDF)}}


def test_an_image_arrives_byte_for_byte(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    answer = run.openai(timeout=90).chat.completions.create(
        model="replica-flash", messages=[image_message("what is in this picture")]
    )
    text = answer.choices[0].message.content
    assert text == (
        f"Received 1 file: {seen('image-1.png', 'image/png', PNG)}.\n\n"
        "Replica replica-flash answers: what is in this picture"
    )
    recorded = site.last_run()
    assert recorded["files"] == [
        {
            "name": "image-1.png",
            "mime_type": "image/png",
            "bytes": len(PNG),
            "sha256": hashlib.sha256(PNG).hexdigest(),
        }
    ]
    # The prompt says which message carried it.
    assert recorded["prompt"] == "[attached: image-1.png]\nwhat is in this picture"


def test_a_pdf_file_part_streams_its_answer(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    stream = run.openai(timeout=90).chat.completions.create(
        model="replica-flash",
        stream=True,
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "summarise it"}, pdf_part("report.pdf")]}
        ],
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text.startswith(f"Received 1 file: {seen('report.pdf', 'application/pdf', PDF)}.")
    assert [file["name"] for file in site.last_run()["files"]] == ["report.pdf"]


def test_an_input_audio_part_arrives_byte_for_byte(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    audio: Any = {
        "type": "input_audio",
        "input_audio": {"data": base64.b64encode(WAV).decode(), "format": "wav"},
    }
    answer = run.openai(timeout=90).chat.completions.create(
        model="replica-flash",
        messages=[{"role": "user", "content": [{"type": "text", "text": "transcribe this"}, audio]}],
    )
    assert (answer.choices[0].message.content or "").startswith(
        f"Received 1 file: {seen('audio-1.wav', 'audio/wav', WAV)}."
    )
    assert site.last_run()["files"] == [
        {
            "name": "audio-1.wav",
            "mime_type": "audio/wav",
            "bytes": len(WAV),
            "sha256": hashlib.sha256(WAV).hexdigest(),
        }
    ]


def test_files_of_two_messages_go_with_the_one_prompt_each_named_where_it_came(
    served: tuple[Coordinator, Site],
) -> None:
    run, site = served
    messages: list[ChatCompletionMessageParam] = [
        image_message("here is a chart"),
        {"role": "assistant", "content": "I see a chart."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "and compare with"}, pdf_part("q3.pdf"), pdf_part("q4.pdf")],
        },
    ]
    text = run.openai(timeout=90).chat.completions.create(model="replica-flash", messages=messages)
    said = text.choices[0].message.content or ""
    assert said.startswith(
        f"Received 3 files: {seen('image-1.png', 'image/png', PNG)}; "
        f"{seen('q3.pdf', 'application/pdf', PDF)}; {seen('q4.pdf', 'application/pdf', PDF)}."
    )
    prompt = site.last_run()["prompt"]
    assert "User: [attached: image-1.png]\nhere is a chart" in prompt
    assert prompt.endswith("User: [attached: q3.pdf, q4.pdf]\nand compare with")


def test_a_chip_left_on_the_page_never_goes_with_the_next_prompt(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    ports = {name: child["ports"]["browser"] for name, child in run.children().items()}
    for port in ports.values():
        leave_a_chip(port)
    served_by: set[str] = set()
    for _ in range(8):  # until each child has served one (the pool picks which)
        raw = run.openai(timeout=90).chat.completions.with_raw_response.create(
            model="replica-flash", messages=[{"role": "user", "content": "no files here"}]
        )
        assert raw.parse().choices[0].message.content == "Replica replica-flash answers: no files here"
        assert site.last_run()["files"] == []
        served_by.add(raw.headers["x-coordinator-child"])
        if served_by >= set(ports):
            break
    assert served_by >= set(ports)
    log = "".join(path.read_text() for path in Path(run.log_dir).glob("demo-*.log"))
    assert '"attachments_left_over"' in log


def leave_a_chip(browser_port: int) -> None:
    """A file attached on the child's live page by someone else, as a failed request leaves one."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{browser_port}")
        page = browser.contexts[0].pages[0]
        stale: FilePayload = {"name": "stale.png", "mimeType": "image/png", "buffer": PNG}
        page.locator('input[type="file"][data-test-upload-file-input]').set_input_files([stale])
        page.locator("ms-media-chip").wait_for(timeout=10_000)


def test_a_file_near_the_size_limit_arrives_whole(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    big = b"%PDF-1.7\n" + secrets.token_bytes(12 * 1024 * 1024)
    part: Any = {
        "type": "file",
        "file": {"filename": "big.pdf", "file_data": data_url("application/pdf", big)},
    }
    answer = run.openai(timeout=120).chat.completions.create(
        model="replica-flash",
        messages=[{"role": "user", "content": [{"type": "text", "text": "read it"}, part]}],
    )
    assert (answer.choices[0].message.content or "").startswith(
        f"Received 1 file: {seen('big.pdf', 'application/pdf', big)}."
    )
    assert site.last_run()["files"][0]["sha256"] == hashlib.sha256(big).hexdigest()
