"""Files in the replica: the page's upload flow, the file parts of the request, and what the
model says it received.

The page's side is as AI Studio's (../shared/research/aistudio-page.md): the add-media
button opens a menu, its "Upload a file" item opens the browser's file chooser (the page
calls `input.click()` on its hidden `input[type="file"]`, which a browser allows only
within a user's click), and each file taken shows an
`ms-media-chip`, "uploading" first (a spinner, Run disabled) and then ready, with its
remove button. A type the page does not take is refused with a toast and gets no chip.
On submit the chips' files go with the prompt and the chips move into the user turn; New
chat clears them.

On the wire (`child.replica.wire`): a content part whose index 2 is set is a file, inline
data as the Gemini proto's Blob has it, `[mime_type, base64]`, plus the replica's choice
of the file's name at index 2 of the blob: `[null, null, [mime_type, base64, name]]`.

The replica's model proves what arrived: it starts its answer with each file's name, MIME
type, byte count and the first 12 hex digits of the SHA-256 of the bytes it decoded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

# What the page takes (AI Studio takes images, audio, video, PDFs and text); anything else
# is refused at the chip, before any upload.
UPLOAD_TYPES: Final = (
    "image/png",
    "image/jpeg",
    "image/webp",
    "image/gif",
    "image/heic",
    "image/heif",
    "application/pdf",
    "audio/wav",
    "audio/mpeg",
    "text/plain",
    "video/mp4",
)
SHA_SHOWN: Final = 12


class FilePartError(ValueError):
    """A file part that is not the page's `[mime_type, base64, name]`; the message says how."""


@dataclass(frozen=True, slots=True)
class InlineFile:
    """One file a content carries, decoded."""

    mime_type: str
    data: bytes = field(repr=False)
    name: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def to_json(self) -> dict[str, Any]:
        """For the record of runs: never the bytes."""
        return {"name": self.name, "mime_type": self.mime_type, "bytes": len(self.data),
                "sha256": self.sha256}  # fmt: skip

    def to_part(self) -> list[Any]:
        return [None, None, [self.mime_type, base64.b64encode(self.data).decode(), self.name]]


def read_file_part(blob: Any) -> InlineFile:
    """The file of a part's index 2; raises FilePartError for anything the page never sends."""
    if not (isinstance(blob, list) and len(blob) in (2, 3)):
        raise FilePartError("is not [mime_type, base64, name]")
    mime, data, *rest = blob
    name = rest[0] if rest else ""
    if not isinstance(mime, str) or mime not in UPLOAD_TYPES:
        raise FilePartError(f"has a type the page does not take: {mime!r}")
    if not isinstance(data, str) or not isinstance(name, str):
        raise FilePartError("is not [mime_type, base64, name]")
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise FilePartError("holds data that is not base64") from None
    return InlineFile(mime, decoded, name)


def describe(files: Sequence[InlineFile]) -> str:
    """The answer's first line when the prompt carries files: what arrived, exactly."""
    shown = [
        f"{file.name or 'unnamed'} ({file.mime_type}, {len(file.data)} bytes, "
        f"sha256 {file.sha256[:SHA_SHOWN]})"
        for file in files
    ]
    return f"Received {len(files)} file{'s' if len(files) != 1 else ''}: " + "; ".join(shown) + "."


# ---- the page

STYLE: Final = """
  ms-prompt-box .media-chips { display: flex; flex-wrap: wrap; gap: 6px; }
  ms-prompt-box .media-chips:not(:empty) { margin-bottom: 8px; }
  ms-media-chip { display: inline-flex; align-items: center; gap: 6px; padding: 2px 4px 2px 10px;
                  border: 1px solid #747775; border-radius: 8px; background: #fff; }
  ms-media-chip.uploading { opacity: 0.6; }
  ms-media-chip .remove-media-button { border: 0; background: none; padding: 0 2px; }
  mat-progress-spinner { width: 12px; height: 12px; border: 2px solid #0b57d0;
                         border-right-color: transparent; border-radius: 50%;
                         animation: spin 1s linear infinite; }
  ms-file-chunk { display: inline-flex; gap: 4px; margin: 4px 4px 4px 0; padding: 2px 8px;
                  border: 1px solid #dadce0; border-radius: 8px; }
  .add-media-button { align-self: center; }
"""

# The chips' row, the add-media button and the hidden input, as the prompt box holds them.
CHIPS: Final = '<div class="media-chips"></div>'
BUTTON: Final = """<button type="button" class="ms-button-icon add-media-button"
            data-test-id="add-media-button" aria-label="Insert assets such as images, videos, files, or audio"
            aria-haspopup="menu"><span class="material-symbols-outlined">add_circle</span></button>
          <input type="file" data-test-upload-file-input multiple hidden>"""

TEMPLATES: Final = """
<template id="tpl-add-media-menu"><div class="cdk-overlay-backdrop cdk-overlay-transparent-backdrop"></div>
  <div class="cdk-overlay-connected-position-bounding-box"><div class="cdk-overlay-pane"><div
    class="mat-mdc-menu-panel" role="menu"><div class="mat-mdc-menu-content">
    <button type="button" class="mat-mdc-menu-item" role="menuitem" data-action="drive"><span
      class="material-symbols-outlined">drive_folder_upload</span><span
      class="mat-mdc-menu-item-text">My Drive</span></button>
    <button type="button" class="mat-mdc-menu-item" role="menuitem" data-action="upload"><span
      class="material-symbols-outlined">upload</span><span class="mat-mdc-menu-item-text">Upload a file</span>
        </button>
    <button type="button" class="mat-mdc-menu-item" role="menuitem" data-action="record"><span
      class="material-symbols-outlined">mic</span><span class="mat-mdc-menu-item-text">Record Audio</span>
        </button>
  </div></div></div></div></template>
<template id="tpl-media-chip"><ms-media-chip class="uploading"><mat-progress-spinner
  role="progressbar" aria-label="Uploading"></mat-progress-spinner><span
  class="media-chip-name"></span><button type="button" class="remove-media-button"
  aria-label="Remove file"><span class="material-symbols-outlined">close</span></button>
    </ms-media-chip></template>
<template id="tpl-file-chunk"><ms-file-chunk><span class="material-symbols-outlined">draft</span><span
  class="file-chunk-name"></span></ms-file-chunk></template>
"""

# Runs in the page script's closure, after it (function declarations are hoisted, so the
# page's own code calls these; the state is `page.files`).
SCRIPT: Final = r"""
  // ---- uploads: the add-media menu, the hidden file input, a chip per file
  const addMediaButton = $('button[data-test-id="add-media-button"]');
  const fileInput = $('input[type="file"][data-test-upload-file-input]');
  const mediaChips = $("ms-prompt-box .media-chips");

  function uploadsBusy() {
    return page.files.some((file) => file.uploading);
  }

  function openAddMedia() {
    const overlay = openOverlay("tpl-add-media-menu",
                                { modal: false, closable: true, anchor: addMediaButton });
    // The button sits at the bottom of the page: the menu opens above it.
    const box = overlay.nodes[1];
    const panel = $(".mat-mdc-menu-panel", box);
    box.style.top = `${Math.max(8, addMediaButton.getBoundingClientRect().top - panel.offsetHeight - 4)}px`;
    for (const item of overlay.nodes[1].querySelectorAll(".mat-mdc-menu-item")) {
      item.addEventListener("click", () => {
        closeOverlay(overlay);
        // A browser opens its chooser only within a user's click (Playwright's count as one).
        if (item.dataset.action === "upload") fileInput.click();
      });
    }
  }

  function removeFile(entry) {
    entry.chip.remove();
    page.files = page.files.filter((file) => file !== entry);
    updateRunButton();
  }

  function addFile(file) {
    if (!BOOT.uploadTypes.includes(file.type)) {
      showToast(`${file.name}: this type of file is not supported.`);
      return;
    }
    const chip = firstOf("tpl-media-chip");
    $(".media-chip-name", chip).textContent = file.name;
    const entry = { name: file.name, mime: file.type, data: null, uploading: true, chip };
    $(".remove-media-button", chip).addEventListener("click", () => removeFile(entry));
    mediaChips.appendChild(chip);
    page.files.push(entry);
    updateRunButton();
    const reader = new FileReader();
    // The upload's round trip, after the file is read: the chip stays "uploading" meanwhile.
    reader.onload = () => setTimeout(() => uploaded(entry, String(reader.result)), BOOT.uploadMs);
    reader.onerror = () => {
      removeFile(entry);
      showToast(`${file.name}: the upload failed.`);
    };
    reader.readAsDataURL(file);
  }

  function uploaded(entry, dataUrl) {
    if (!page.files.includes(entry)) return;  // removed while it uploaded
    const comma = dataUrl.indexOf(",");
    entry.data = comma < 0 ? "" : dataUrl.slice(comma + 1);
    entry.uploading = false;
    entry.chip.classList.remove("uploading");
    $("mat-progress-spinner", entry.chip).remove();
    updateRunButton();
  }

  // The files of the prompt being sent: they leave the prompt box for the user turn.
  function takeFiles() {
    const files = page.files.map(({ name, mime, data }) => ({ name, mime, data }));
    clearFiles();
    return files;
  }

  function clearFiles() {
    for (const entry of page.files) entry.chip.remove();
    page.files = [];
    updateRunButton();
  }

  function fileParts(turn) {
    return (turn.files || []).map((file) => [null, null, [file.mime, file.data, file.name]]);
  }

  function showTurnFiles(turn, files) {
    const content = $(".turn-content", turn);
    for (const file of files) {
      const chunk = firstOf("tpl-file-chunk");
      $(".file-chunk-name", chunk).textContent = file.name;
      content.prepend(chunk);
    }
  }

  addMediaButton.addEventListener("click", openAddMedia);
  fileInput.addEventListener("change", () => {
    const chosen = [...fileInput.files];
    fileInput.value = "";  // so that the same file can be chosen again
    chosen.forEach(addFile);
  });
"""
