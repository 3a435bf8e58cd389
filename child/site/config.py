"""What the driver knows of the site, as data: its address, selectors, page texts, and
where the answer comes from.

The page changes without notice, so none of this is code: a user fixes a selector with
`--site-config FILE` (TOML or JSON with a `[selectors]` table) instead of waiting for a
release, and `--site-url` replaces the origin, so the same driver runs against the local
replica. A selector is a CSS selector list, newest form first, then the fallbacks: the
first alternative that matches wins, and `check-site` says which one did.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

SITE_URL = "https://aistudio.google.com"
NEW_CHAT_PATH = "/prompts/new_chat"

# As last seen on the page (../shared/research/aistudio-page.md, spec-11 A); override with
# --site-config. Plain CSS only: each one runs both in Playwright and in document.querySelector.
SELECTORS: dict[str, str] = {
    # The empty chat: present until the first turn, back after New chat. The page's "ready".
    "zero_state": "ms-zero-state",
    "prompt": (
        'ms-prompt-box textarea[aria-label="Enter a prompt"], '
        'textarea[formcontrolname="promptText"], ms-prompt-box textarea.textarea'
    ),
    "run_button": (
        'ms-run-button button[type="submit"].ms-button-primary, ms-run-button button[type="submit"]'
    ),
    # The run button while the page generates (a click on it stops).
    "stop_button": (
        'ms-run-button button[aria-label="Stop generating"], '
        'ms-run-button button[type="submit"] svg .stoppable-spinner'
    ),
    "model_turn": "ms-chat-turn .chat-turn-container.model",
    "turn_text": "ms-cmark-node.cmark-node",
    # Inside a model turn, not the answer: the thinking, and a code block's header and buttons.
    "thought": "ms-thought-chunk",
    "code_block": "ms-code-block",
    # Inside the last model turn's ms-chat-turn once the answer is complete.
    "finished": ".actions-container button.toggle-edit-button, .turn-footer button",
    "model_label": '[data-test-id="model-name"]',
    "new_chat": 'button[data-test-clear="outside"][aria-label="New chat"], button[aria-label="New chat"]',
    "confirm_discard": ".mat-mdc-dialog-inner-container button.ms-button-primary",
    "more_actions": 'button[aria-label="View more actions"]',
    "menu": ".mat-mdc-menu-panel",
    "temporary_chat": "button[data-test-incognito-toggle]",
    "temporary_on": "ms-incognito-mode-indicator",
    "run_settings": "ms-run-settings",
    "advanced_settings": 'button[aria-label="Advanced settings"]',
    "temperature": (
        'div[data-test-id="temperatureSliderContainer"] input.slider-number-input, '
        'div[data-test-id="temperatureSliderContainer"] input[inputmode="decimal"], '
        'input.slider-number-input[aria-valuemax="2"]'
    ),
    "top_p": (
        'div[data-test-id="topPSliderContainer"] input.slider-number-input, '
        'div[data-test-id="topPSliderContainer"] input[inputmode="decimal"], '
        'input.slider-number-input[aria-valuemax="1"]'
    ),
    "max_tokens": 'input[aria-label="Maximum output tokens"]',
    "add_stop": 'input[aria-label="Add stop token"]',
    "remove_stop": (
        'mat-chip button.remove-button[aria-label^="Remove"], mat-chip button[aria-label*="Remove"]'
    ),
    # The collapsed "Tools" group: structured output and function calling, each a toggle
    # and an Edit button (disabled while off) opening a dialog with a JSON editor.
    "tools_group": 'button.settings-group-header[aria-label="Tools"], button[aria-label="Tools"]',
    "structured_output_toggle": (
        'div[data-test-id="structuredOutputTooltip"] mat-slide-toggle button, '
        'div[data-test-id="structuredOutputTooltip"] button[role="switch"]'
    ),
    "schema_edit": (
        'div[data-test-id="structuredOutputTooltip"] button.edit-schema-button, '
        'div[data-test-id="structuredOutputTooltip"] button.ms-button-borderless'
    ),
    "schema_editor": "ms-edit-schema-dialog ms-text-editor textarea, ms-edit-schema-dialog textarea",
    "schema_save": (
        'ms-edit-schema-dialog button[aria-label="Save the schema"], '
        "ms-edit-schema-dialog .mat-mdc-dialog-actions button.ms-button-primary"
    ),
    "function_calling_toggle": (
        'div[data-test-id="functionCallingTooltip"] mat-slide-toggle button, '
        'div[data-test-id="functionCallingTooltip"] button[role="switch"]'
    ),
    "function_declarations_edit": (
        'div[data-test-id="functionCallingTooltip"] button.edit-function-declarations-button, '
        "button.edit-function-declarations-button"
    ),
    "function_declarations_editor": (
        "ms-edit-function-declarations-dialog ms-text-editor textarea, "
        "ms-edit-function-declarations-dialog textarea"
    ),
    "function_declarations_save": (
        'ms-edit-function-declarations-dialog button[aria-label="Save the current function declarations"], '
        'mat-dialog-container button[aria-label="Save the current function declarations"]'
    ),
    # The declarations and schema dialogs open on their Visual Editor tab until the Code
    # Editor tab (where the JSON goes) has been used.
    "code_editor_tab": (
        'mat-dialog-container button[role="tab"].code-editor-tab, '
        'mat-dialog-container ms-tab-group button[role="tab"]:nth-child(2)'
    ),
    "tool_editor_error": 'mat-dialog-container .editor-error, mat-dialog-container [role="alert"]',
    "tool_dialog_close": (
        'mat-dialog-container button[aria-label="Close"], mat-dialog-container button.close-button'
    ),
    # System instructions: a button (or card) opens the panel with the field; its close button.
    "system_instructions": (
        'button[data-test-system-instructions-card], button[aria-label="System instructions"]'
    ),
    "system_text": 'ms-system-instructions textarea, textarea[aria-label="System instructions"]',
    "system_close": "ms-system-instructions button[data-test-close-button], button[data-test-close-button]",
    # The thinking level's select, and its options (present only while its list is open).
    "thinking_level": 'mat-select[aria-label="Thinking Level"], ms-thinking-level-setting mat-select',
    "thinking_option": '[role="listbox"] mat-option, [role="listbox"] [role="option"]',
    # The tools' switches; on when aria-checked is "true".
    "search_tool": (
        'div[data-test-id="searchAsAToolTooltip"] mat-slide-toggle button, '
        'div[data-test-id="searchAsAToolTooltip"] button[role="switch"]'
    ),
    "url_context_tool": 'div[data-test-id="browseAsAToolTooltip"] button',
    "error_callout": "ms-callout.error-callout .message, ms-callout.warning-callout .message",
    "toast": "div.toast.error span.content-text, div.toast.warning span.content-text",
    # Files (child.site.uploads): the add-media button, its menu's items (the one whose text
    # is "Upload a file" opens the file chooser), a file's chip, still uploading, and its remove.
    "add_media": 'button[data-test-id="add-media-button"]',
    "upload_item": '.mat-mdc-menu-panel button[role="menuitem"], .mat-mdc-menu-panel .mat-mdc-menu-item',
    "media_chip": "ms-media-chip",
    "media_uploading": "ms-media-chip mat-progress-spinner, ms-media-chip.uploading",
    "remove_media": 'ms-media-chip button[aria-label^="Remove"], ms-media-chip button.remove-media-button',
    # Pop-ups that block clicks and keys, and the button that dismisses each.
    "cookie_accept": "div.glue-cookie-notification-bar.visible button.glue-cookie-notification-bar__accept",
    "skip_vote": 'button[data-test-id="skip-button"][aria-label="Skip preference vote"]',
    "close_survey": 'div.hats-survey button[aria-label="Close survey"], button[aria-label="Close survey"]',
}
# What an empty chat must match (after the driver turned temporary chat on): checked at
# start and after every reset, and reported in /health as `selectors_missing`. The rest
# are seen only in a turn, a menu, a group or a pop-up, or only for some models.
ZERO_STATE_KEYS = (
    "zero_state",
    "prompt",
    "run_button",
    "model_label",
    "new_chat",
    "more_actions",
    "temporary_on",
    "run_settings",
    "advanced_settings",
    "tools_group",
)
# The buttons that dismiss a pop-up, in the order they are tried.
POPUP_KEYS = ("cookie_accept", "skip_vote", "close_survey")
# Where a logged-out session lands.
LOGIN_URL_PATTERNS = ("accounts.google.com", "/login", "ServiceLogin")
# Texts of the page's quota and rate-limit messages, and how long each keeps a profile out.
QUOTA_PATTERNS: dict[str, int] = {
    "rate limit": 300,
    "exceeded quota": 4 * 3600,
    "out of free generations": 4 * 3600,
    "resource_exhausted": 300,
    "resource has been exhausted": 300,
}
# Texts of the page's "permission denied" message: the page's proof was refused.
PERMISSION_PATTERNS = ("permission denied", "does not have permission")
# Used until the page's own model list has been seen.
DEFAULT_MODELS = ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.0-flash")
MODEL_PREFERENCE_KEY = "aiStudioUserPreference"
MODELS_RESPONSE_PATTERN = "ListModels"
ANSWER_HOST = "alkalimakersuite-pa.clients6.google.com:443"
ANSWER_PATH = "/GenerateContent"


class AnswerSource(StrEnum):
    """Where the driver reads the answer: the page's own network answer, or (forced, and
    always labelled) the rendered page."""

    NETWORK = "network"
    DOM = "dom"


@dataclass(frozen=True, slots=True)
class SiteConfig:
    url: str = SITE_URL
    selectors: Mapping[str, str] = field(default_factory=lambda: dict(SELECTORS))
    login_url_patterns: tuple[str, ...] = LOGIN_URL_PATTERNS
    quota_patterns: Mapping[str, int] = field(default_factory=lambda: dict(QUOTA_PATTERNS))
    default_models: tuple[str, ...] = DEFAULT_MODELS
    # The only host the capture decrypts, and the suffix of the path that is the answer.
    answer_host: str = ANSWER_HOST
    answer_path: str = ANSWER_PATH
    # An extra CA the capture trusts upstream (a replica's); None on the real site.
    answer_ca: Path | None = None
    answer_source: AnswerSource = AnswerSource.NETWORK
    # A cold page can take a minute and more; an answer can take minutes.
    load_timeout_s: float = 90.0
    start_timeout_s: float = 60.0
    answer_timeout_s: float = 600.0
    # One step of the page (a button to appear, a dialog to open) that is quick or broken.
    step_timeout_s: float = 10.0

    @property
    def new_chat_url(self) -> str:
        return self.url.rstrip("/") + NEW_CHAT_PATH

    def chat_url(self, model: str | None) -> str:
        """The new-chat page, opened on `model` when one is given (`?model=<id>`)."""
        return self.new_chat_url + (f"?model={model}" if model else "")


class SiteConfigError(ValueError):
    """The --site-config file cannot be used; the message says why."""


_KEYS = {
    "url",
    "selectors",
    "login_url_patterns",
    "quota_patterns",
    "default_models",
    "answer_host",
    "answer_path",
    "answer_ca",
    "answer_source",
}


def load_site_config(path: Path | None, url: str | None = None) -> SiteConfig:
    """The defaults, overridden by a TOML or JSON file, with `url` replacing the origin."""
    config = SiteConfig()
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (OSError, ValueError) as exc:
            raise SiteConfigError(f"--site-config {path}: {exc}") from None
        if not isinstance(data, Mapping):
            raise SiteConfigError(f"--site-config {path}: not a table of settings")
        config = _apply_overrides(config, data, path)
    if url:
        config = replace(config, url=url.rstrip("/"))
    return config


def _apply_overrides(config: SiteConfig, data: Mapping[str, Any], path: Path) -> SiteConfig:
    unknown = set(data) - _KEYS
    if unknown:
        raise SiteConfigError(f"--site-config {path}: unknown keys {sorted(unknown)}")
    selectors = data.get("selectors", {})
    bad = set(selectors) - set(SELECTORS)
    if bad or not all(isinstance(v, str) and v.strip() for v in selectors.values()):
        raise SiteConfigError(
            f"--site-config {path}: [selectors] takes non-empty strings for {sorted(SELECTORS)}; "
            f"unknown: {sorted(bad)}"
        )
    changes: dict[str, Any] = {"selectors": {**config.selectors, **selectors}}
    if "url" in data:
        changes["url"] = str(data["url"]).rstrip("/")
    if "login_url_patterns" in data:
        changes["login_url_patterns"] = tuple(data["login_url_patterns"])
    if "quota_patterns" in data:
        changes["quota_patterns"] = {str(k).lower(): int(v) for k, v in data["quota_patterns"].items()}
    if "default_models" in data:
        changes["default_models"] = tuple(data["default_models"])
    for name in ("answer_host", "answer_path"):
        if name in data:
            if not isinstance(data[name], str) or not data[name]:
                raise SiteConfigError(f"--site-config {path}: {name} takes a non-empty string")
            changes[name] = data[name]
    if "answer_ca" in data:
        # Relative to the config file, so a config and its CA travel together.
        changes["answer_ca"] = path.parent / str(data["answer_ca"]) if data["answer_ca"] else None
    if "answer_source" in data:
        try:
            changes["answer_source"] = AnswerSource(data["answer_source"])
        except ValueError:
            raise SiteConfigError(
                f"--site-config {path}: answer_source is one of {[s.value for s in AnswerSource]}"
            ) from None
    return replace(config, **changes)


def alternatives(selector: str) -> list[str]:
    """The alternatives of a CSS selector list: split at the top-level commas only (not in
    quotes, brackets or parentheses), so `check-site` can say which one matched."""
    parts: list[str] = []
    depth, quote, start = 0, "", 0
    for index, char in enumerate(selector):
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(selector[start:index].strip())
            start = index + 1
    parts.append(selector[start:].strip())
    return [part for part in parts if part]
