"""Files through the page: the prompt's labels of which message carried which file, and the
driver's attach step on the replica in a real Chromium (the files reach the endpoint, the
upload is waited for, a renamed button is named)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from child.engines.base import Prompt
from child.engines.browser import find_chromium
from child.site.driver import conversation_text
from child.site.errors import DriverError
from child.site.uploads import by_path, file_labels, labelled, written
from coordinator.protocol.request import Attachment
from tests.child.site import test_replica
from tests.child.site.test_replica import Start, _answer, _site, _text

# The driver-on-the-replica fixture, shared with the driver's other page tests.
replica_page = test_replica.replica_page

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
PDF = b"%PDF-1.4\n" + bytes(range(100)) + b"\n%%EOF\n"
browser = pytest.mark.skipif(find_chromium(None, os.environ) is None, reason="no Chromium")


def test_each_message_names_the_files_it_carried() -> None:
    files = (Attachment(0, "image/png", PNG, "image-1.png"), Attachment(2, "application/pdf", PDF, "a.pdf"),
             Attachment(2, "application/pdf", PDF, "b.pdf"))  # fmt: skip
    assert file_labels(files) == {0: ("image-1.png",), 2: ("a.pdf", "b.pdf")}
    messages = (
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url"}]},
        {"role": "assistant", "content": "seen"},
        {"role": "user", "content": [{"type": "file"}, {"type": "file"}]},
    )
    assert conversation_text(messages, file_labels(files)) == (
        "User: [attached: image-1.png]\nlook\n\nAssistant: seen\n\nUser: [attached: a.pdf, b.pdf]"
    )
    # A lone message stays a bare prompt, its files named first.
    assert conversation_text(messages[:1], {0: ("image-1.png",)}) == "[attached: image-1.png]\nlook"
    assert labelled("", ["x.png"]) == "[attached: x.png]"


def _prompt(text: str, *files: Attachment) -> Prompt:
    content = [{"type": "text", "text": text}, *({"type": "file"} for _ in files)]
    return Prompt("replica-flash", ({"role": "user", "content": content},), attachments=files)


@browser
@pytest.mark.browser
async def test_files_are_attached_and_waited_for_before_submit(replica_page: Start) -> None:
    async with replica_page(popups=True, popup_delay_ms=100, upload_ms=700) as (replica, page):
        site = _site(replica)
        await site.open(page)
        files = (Attachment(0, "image/png", PNG, "chart.png"), Attachment(0, "application/pdf", PDF, "q.pdf"))
        text = _text(await _answer(site, _prompt("compare", *files)))
        assert text.startswith(f"Received 2 files: chart.png (image/png, {len(PNG)} bytes, sha256 ")
        run = replica.wait_run(0, "completed")
        assert [(f["name"], f["sha256"]) for f in run["files"]] == [
            ("chart.png", hashlib.sha256(PNG).hexdigest()),
            ("q.pdf", hashlib.sha256(PDF).hexdigest()),
        ]
        assert run["prompt"] == "[attached: chart.png, q.pdf]\ncompare"
        # The next prompt goes without them.
        assert _text(await _answer(site, _prompt("again"))) == "Replica replica-flash answers: again"
        assert replica.wait_run(1, "completed")["files"] == []


@browser
@pytest.mark.browser
async def test_a_renamed_add_media_button_fails_the_attach_step_naming_it(replica_page: Start) -> None:
    async with replica_page(drift=frozenset({"add_media"})) as (replica, page):
        site = _site(replica)
        await site.open(page)
        with pytest.raises(DriverError) as failed:
            await _answer(site, _prompt("look", Attachment(0, "image/png", PNG, "a.png")))
        assert (failed.value.step, failed.value.key) == ("attach", "add_media")
        assert (
            'step attach: selector add_media (`button[data-test-id="add-media-button"]`)'
            in failed.value.message
        )
        assert replica.runs() == []
        # Without files the page still serves.
        assert _text(await _answer(site, _prompt("hi"))) == "Replica replica-flash answers: hi"


@pytest.mark.parametrize(
    ("name", "mime", "path"),
    [
        ("a.png", "image/png", True),
        ("Scan.PDF", "application/pdf", True),
        ("x.jpg", "image/png", False),  # the browser would say image/jpeg
        ("voice.wav", "audio/wav", False),  # audio/x-wav in some browsers
        ("notes", "text/plain", False),
        ("../a.png", "image/png", False),
        ("..", "image/png", False),
    ],
)
def test_a_file_goes_by_path_only_when_the_browser_sees_its_name_and_type(
    name: str, mime: str, path: bool
) -> None:
    assert by_path(Attachment(0, mime, b"x", name)) is path


def test_files_are_written_under_their_own_names_even_when_names_repeat(tmp_path: Path) -> None:
    files = (Attachment(0, "image/png", PNG, "a.png"), Attachment(1, "image/png", b"other", "a.png"))
    paths = written(tmp_path, files)
    assert paths is not None and [p.name for p in paths] == ["a.png", "a.png"]
    assert [p.read_bytes() for p in paths] == [PNG, b"other"]
    assert written(tmp_path, (*files, Attachment(2, "audio/wav", b"RIFF", "v.wav"))) is None
