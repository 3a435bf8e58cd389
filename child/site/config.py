"""What the driver knows of the site, as data: its address, selectors, page texts.

The page changes without notice, so none of this is code: a user fixes a selector with
`--site-config FILE` (TOML or JSON with a `[selectors]` table) instead of waiting for a
release, and `--site-url` replaces the origin, so the same driver runs against the local
replica.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

SITE_URL = "https://aistudio.google.com"
NEW_CHAT_PATH = "/prompts/new_chat"

# As last seen on the page (../shared/research/aistudio-page.md); override with --site-config.
SELECTORS: dict[str, str] = {
    "prompt": "ms-prompt-input-wrapper ms-autosize-textarea textarea",
    "run_button": 'button[aria-label="Run"].run-button',
    "spinner": 'button[aria-label="Run"].run-button svg .stoppable-spinner',
    "model_turn": "ms-chat-turn .chat-turn-container.model",
    "turn_text": "ms-cmark-node.cmark-node",
    "new_chat": 'button[data-test-clear="outside"][aria-label="New chat"]',
    "confirm_discard": 'button.ms-button-primary:has-text("Discard and continue")',
    "new_chat_link": 'a.playground-link[href="/prompts/new_chat"]',
    "dialog": ".mat-mdc-dialog-inner-container",
    "toast": "div.toast.warning, div.toast.error",
    "temperature": 'ms-slider input[type="number"][max="2"]',
    "top_p": 'ms-slider input[type="number"][max="1"]',
    "max_tokens": 'input[aria-label="Maximum output tokens"]',
    "add_stop": 'input[aria-label="Add stop token"]',
    "remove_stop": 'mat-chip-set mat-chip-row button[aria-label*="Remove"]',
}
# Where a logged-out session lands.
LOGIN_URL_PATTERNS = ("accounts.google.com", "/login", "ServiceLogin")
# Texts of the page's quota and rate-limit messages, and how long each keeps a profile out.
QUOTA_PATTERNS: dict[str, int] = {
    "rate limit": 300,
    "exceeded quota": 4 * 3600,
    "out of free generations": 4 * 3600,
    "resource_exhausted": 300,
}
# Used until the page's own model list has been seen.
DEFAULT_MODELS = ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.0-flash")
MODEL_PREFERENCE_KEY = "aiStudioUserPreference"
MODELS_RESPONSE_PATTERN = "ListModels"


@dataclass(frozen=True, slots=True)
class SiteConfig:
    url: str = SITE_URL
    selectors: Mapping[str, str] = field(default_factory=lambda: dict(SELECTORS))
    login_url_patterns: tuple[str, ...] = LOGIN_URL_PATTERNS
    quota_patterns: Mapping[str, int] = field(default_factory=lambda: dict(QUOTA_PATTERNS))
    default_models: tuple[str, ...] = DEFAULT_MODELS
    # A cold page can take a minute and more; an answer can take minutes.
    load_timeout_s: float = 90.0
    start_timeout_s: float = 60.0
    answer_timeout_s: float = 600.0

    @property
    def new_chat_url(self) -> str:
        return self.url.rstrip("/") + NEW_CHAT_PATH


class SiteConfigError(ValueError):
    """The --site-config file cannot be used; the message says why."""


def load_site_config(path: Path | None, url: str | None = None) -> SiteConfig:
    """The defaults, overridden by a TOML or JSON file, with `url` replacing the origin."""
    config = SiteConfig()
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (OSError, ValueError) as exc:
            raise SiteConfigError(f"--site-config {path}: {exc}") from None
        config = _apply_overrides(config, data, path)
    if url:
        config = replace(config, url=url.rstrip("/"))
    return config


def _apply_overrides(config: SiteConfig, data: Mapping[str, Any], path: Path) -> SiteConfig:
    unknown = set(data) - {"url", "selectors", "login_url_patterns", "quota_patterns", "default_models"}
    if unknown:
        raise SiteConfigError(f"--site-config {path}: unknown keys {sorted(unknown)}")
    selectors = data.get("selectors", {})
    bad = set(selectors) - set(SELECTORS)
    if bad or not all(isinstance(v, str) and v for v in selectors.values()):
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
    return replace(config, **changes)
