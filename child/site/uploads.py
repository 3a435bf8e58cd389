"""Files through the page's upload flow: the add-media button, its "Upload a file" item, the
browser's file chooser, and a chip per file, checked before the prompt is submitted.

The page uploads each file itself (the chip shows "uploading", Run is disabled), then
sends it with the prompt, so the driver hands the browser the bytes and waits for the
page, bounded by the step timeout: every chip shown, none still uploading, as many chips
as files. Chips an earlier request left in the prompt box (a request that failed after
attaching: New chat is disabled on an empty chat, so the reset does not clear them) are
removed first, on every request, so a file never goes with a prompt that did not carry it.

The conversation is one prompt (`conversation_text`), so the files of every message go
with it; `file_labels` says in the prompt which message carried which file.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import structlog
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import FilePayload, Page
from playwright.async_api import TimeoutError as PlaywrightTimeout

from child.site.errors import DriverError, missing
from child.site.scripts import script
from coordinator.protocol.request import Attachment

log = structlog.get_logger("child.site.uploads")

# The add-media menu's item, by its text: the page gives it no attribute of its own.
UPLOAD_ITEM_TEXT: Final = "Upload a file"
# The page uploads each file before its chip is ready: the wait for the chips is a step
# plus the time the files take at this (slow) rate, so 20 MiB may take half a minute.
UPLOAD_BYTES_PER_S: Final = 1024 * 1024
# File endings Chromium and Firefox both map to exactly these types (no "audio/x-wav"
# ambiguity, no HEIC, which Linux browsers do not know): a file so named can go by path.
BY_ENDING: Final = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "pdf": "application/pdf",
    "txt": "text/plain",
    "mp3": "audio/mpeg",
}

# Every chip of the prompt box removed, by its remove button; how many were, and are left.
CLEAR_CHIPS: Final = script(
    "async ([s, ms])",
    """
  const chips = () => qa(document, s.media_chip).length;
  const found = chips();
  if (!found) return {found, left: 0};
  for (const button of qa(document, s.remove_media)) button.click();
  await waitFor(() => chips() === 0, ms);
  return {found, left: chips()};
""",
)

# The chips once the page has them all: `count` shown, none uploading; or what it shows at
# the deadline, and the page's toast (a refused file).
CHIPS_READY: Final = script(
    "async ([s, count, ms])",
    """
  const state = () => ({chips: qa(document, s.media_chip).length,
                        uploading: qa(document, s.media_uploading).length,
                        toast: qa(document, s.toast).map((n) => n.textContent.trim()).join("\\n")});
  await waitFor(() => {
    const now = state();
    return (now.chips >= count && now.uploading === 0) || now.toast !== "";
  }, ms);
  return state();
""",
)


def file_labels(attachments: Sequence[Attachment]) -> dict[int, tuple[str, ...]]:
    """Message index → the names of the files it carries, in order."""
    labels: dict[int, list[str]] = {}
    for attachment in attachments:
        labels.setdefault(attachment.message, []).append(attachment.name)
    return {message: tuple(names) for message, names in labels.items()}


def labelled(text: str, names: Sequence[str]) -> str:
    """A message's text with the files it carried named first (the model sees one prompt)."""
    label = f"[attached: {', '.join(names)}]"
    return f"{label}\n{text}" if text else label


def payloads(attachments: Sequence[Attachment]) -> list[FilePayload]:
    return [{"name": a.name, "mimeType": a.mime_type, "buffer": a.data} for a in attachments]


def by_path(attachment: Attachment) -> bool:
    """Whether the browser, given the file on disk, sees the same name and type: a plain
    name whose ending the browsers map to exactly this type."""
    name = attachment.name
    plain = name not in (".", "..") and not any(char in name for char in "/\\\0")
    ending = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return plain and BY_ENDING.get(ending) == attachment.mime_type


def written(folder: Path, attachments: Sequence[Attachment]) -> list[Path] | None:
    """The files on disk under their own names (a folder each: names may repeat), when every
    one can go by path; else None, and they go as buffers."""
    if not all(by_path(a) for a in attachments):
        return None
    paths = []
    for index, attachment in enumerate(attachments):
        path = folder / str(index) / attachment.name
        path.parent.mkdir(mode=0o700)
        path.write_bytes(attachment.data)
        paths.append(path)
    return paths


async def attach(
    page: Page, selectors: Mapping[str, str], files: Sequence[Attachment], step_s: float
) -> None:
    """Clear chips left from before, then attach `files` and wait until the page shows a
    ready chip for each; a failure names the step `attach` and its selector."""
    await _clear(page, selectors, step_s)
    if not files:
        return
    # A file handed over as a buffer crosses the protocol as base64 and is rebuilt in the
    # page (15 s for 12 MiB); one on disk is a path (milliseconds), read by the browser
    # while the page uploads it: the folder goes once the chips are ready.
    with tempfile.TemporaryDirectory(prefix="coordinator-attach-") as folder:
        paths = written(Path(folder), files)
        await _choose(page, selectors, paths if paths is not None else payloads(files), step_s)
        await _wait_ready(page, selectors, files, step_s)
    log.info("attached", files=[(a.name, a.mime_type, len(a.data)) for a in files], by_path=paths is not None)
    # The chooser took the focus; the submit is a key press in the prompt.
    await page.focus(selectors["prompt"], timeout=step_s * 1000)


async def _clear(page: Page, selectors: Mapping[str, str], step_s: float) -> None:
    cleared: dict[str, Any] = await page.evaluate(CLEAR_CHIPS, [dict(selectors), step_s * 1000])
    if cleared["left"]:
        raise DriverError(
            "attach",
            f"{cleared['left']} chip(s) of an earlier request stayed after their remove buttons "
            f"were clicked, within {step_s:g}s",
            key="remove_media",
            selector=selectors["remove_media"],
        )
    if cleared["found"]:
        log.warning("attachments_left_over", removed=cleared["found"])


async def _choose(
    page: Page, selectors: Mapping[str, str], files: list[Path] | list[FilePayload], step_s: float
) -> None:
    """Add media → Upload a file → the file chooser, with real clicks: a browser opens its
    chooser only within a user's click."""
    ms = step_s * 1000
    try:
        await page.locator(selectors["add_media"]).first.click(timeout=ms)
    except PlaywrightTimeout:
        raise missing("attach", "add_media", selectors["add_media"], step_s) from None
    item = page.locator(selectors["upload_item"]).filter(has_text=UPLOAD_ITEM_TEXT).first
    try:
        async with page.expect_file_chooser(timeout=ms) as chooser:
            await item.click(timeout=ms)
        await (await chooser.value).set_files(files, timeout=ms)
    except PlaywrightTimeout as exc:
        problem = "opened no file chooser" if "chooser" in str(exc).lower() else "matched nothing"
        raise DriverError(
            "attach",
            f"{problem} within {step_s:g}s (the item {UPLOAD_ITEM_TEXT!r} of the add-media menu)",
            key="upload_item",
            selector=selectors["upload_item"],
        ) from None
    except PlaywrightError as exc:
        # The browser refused the files (too large for the protocol, the page gone): not the site.
        raise DriverError(
            "attach", f"the browser did not take the files: {str(exc).splitlines()[0]}"
        ) from None


async def _wait_ready(
    page: Page, selectors: Mapping[str, str], files: Sequence[Attachment], step_s: float
) -> None:
    upload_s = step_s + sum(len(a.data) for a in files) / UPLOAD_BYTES_PER_S
    state: dict[str, Any] = await page.evaluate(CHIPS_READY, [dict(selectors), len(files), upload_s * 1000])
    if state["toast"] and (state["chips"] != len(files) or state["uploading"]):
        raise DriverError(
            "attach",
            f"the page refused a file: {state['toast'][:200]}",
            key="media_chip",
            selector=selectors["media_chip"],
        )
    if state["uploading"]:
        raise DriverError(
            "attach",
            f"{state['uploading']} file(s) still uploading after {upload_s:.0f}s",
            key="media_uploading",
            selector=selectors["media_uploading"],
        )
    if state["chips"] != len(files):
        raise DriverError(
            "attach",
            f"shows {state['chips']} chip(s) for {len(files)} file(s) within {upload_s:.0f}s",
            key="media_chip",
            selector=selectors["media_chip"],
        )
