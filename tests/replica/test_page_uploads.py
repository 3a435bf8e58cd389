"""The replica's upload flow in a real headless Chromium: the add-media menu and its file
chooser, a chip per file (uploading, then ready, Run disabled
meanwhile), types the page refuses, files that reach the answer endpoint byte for byte,
and chips that New chat clears.
"""

from __future__ import annotations

import hashlib

import pytest
from playwright.sync_api import FilePayload, Page, expect

from tests.replica import contract as ui
from tests.support.replica import OpenPage, StartReplica

pytestmark = pytest.mark.browser

ADD_MEDIA = 'button[data-test-id="add-media-button"]'
UPLOAD_ITEM = '.mat-mdc-menu-panel button[role="menuitem"]:has-text("Upload a file")'
FILE_INPUT = 'input[type="file"][data-test-upload-file-input]'
CHIP = "ms-media-chip"
UPLOADING = "ms-media-chip mat-progress-spinner"
REMOVE = 'ms-media-chip button[aria-label="Remove file"]'
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PDF = b"%PDF-1.4\n" + b"\x00\xff" * 300 + b"\n%%EOF\n"


def payload(name: str, mime: str, data: bytes) -> FilePayload:
    return {"name": name, "mimeType": mime, "buffer": data}


def choose(page: Page, *files: FilePayload) -> None:
    """As a user does: add media, Upload a file, the chooser."""
    page.locator(ADD_MEDIA).click()
    with page.expect_file_chooser() as chooser:
        page.locator(UPLOAD_ITEM).click()
    chooser.value.set_files(list(files))


def test_files_reach_the_answer_endpoint_byte_for_byte(
    start_replica: StartReplica, open_page: OpenPage
) -> None:
    replica = start_replica(upload_ms=400)
    page = open_page(replica)
    page.locator(ui.PROMPT).fill("what are these")
    choose(page, payload("chart.png", "image/png", PNG), payload("paper.pdf", "application/pdf", PDF))
    # Uploading: a chip each, with a spinner, and Run disabled until both are done.
    expect(page.locator(CHIP)).to_have_count(2)
    expect(page.locator(UPLOADING)).to_have_count(2)
    expect(page.locator(ui.RUN)).to_be_disabled()
    page.locator(ui.PROMPT).press("Control+Enter")
    expect(page.locator(ui.USER_TURN)).to_have_count(0)  # not while uploading
    expect(page.locator(UPLOADING)).to_have_count(0)
    expect(page.locator(ui.RUN)).to_be_enabled()
    page.locator(ui.RUN).click()
    run = replica.wait_run(0, "completed")
    png, pdf = hashlib.sha256(PNG).hexdigest(), hashlib.sha256(PDF).hexdigest()
    assert run["files"] == [
        {"name": "chart.png", "mime_type": "image/png", "bytes": len(PNG), "sha256": png},
        {"name": "paper.pdf", "mime_type": "application/pdf", "bytes": len(PDF), "sha256": pdf},
    ]
    assert run["answer"].startswith(
        f"Received 2 files: chart.png (image/png, {len(PNG)} bytes, sha256 {png[:12]}); "
        f"paper.pdf (application/pdf, {len(PDF)} bytes, sha256 {pdf[:12]})."
    )
    # The chips moved into the user turn; the prompt box is empty of them.
    expect(page.locator(CHIP)).to_have_count(0)
    expect(page.locator(f"{ui.USER_TURN} ms-file-chunk")).to_have_count(2)


def test_a_type_the_page_does_not_take_gets_a_toast_and_no_chip(
    start_replica: StartReplica, open_page: OpenPage
) -> None:
    replica = start_replica()
    page = open_page(replica)
    # The input is there while the menu is closed, as the page renders it (hidden).
    page.locator(FILE_INPUT).set_input_files(
        [payload("tool.exe", "application/x-msdownload", b"MZ"), payload("ok.png", "image/png", PNG)]
    )
    expect(page.locator(ui.TOAST)).to_contain_text("tool.exe: this type of file is not supported")
    expect(page.locator(CHIP)).to_have_count(1)
    expect(page.locator(CHIP)).to_contain_text("ok.png")


def test_a_chip_can_be_removed_and_new_chat_clears_the_rest(
    start_replica: StartReplica, open_page: OpenPage
) -> None:
    replica = start_replica()
    page = open_page(replica)
    choose(page, payload("a.png", "image/png", PNG), payload("b.txt", "text/plain", b"plain"))
    expect(page.locator(UPLOADING)).to_have_count(0)
    page.locator(REMOVE).first.click()
    expect(page.locator(CHIP)).to_have_count(1)
    page.locator(ui.PROMPT).fill("first")
    page.locator(ui.RUN).click()
    assert [file["name"] for file in replica.wait_run(0, "completed")["files"]] == ["b.txt"]
    choose(page, payload("c.png", "image/png", PNG))
    expect(page.locator(CHIP)).to_have_count(1)
    page.locator(ui.NEW_CHAT).click()
    page.locator(ui.DISCARD).click()
    expect(page.locator(CHIP)).to_have_count(0)
    page.locator(ui.PROMPT).fill("second")
    page.locator(ui.RUN).click()
    assert replica.wait_run(1, "completed")["files"] == []
