"""The site as data: the researched defaults, and a --site-config file overriding them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from child.site.config import SELECTORS, SiteConfigError, load_site_config


def test_defaults_are_the_researched_selectors() -> None:
    config = load_site_config(None)
    assert config.url == "https://aistudio.google.com"
    assert config.new_chat_url == "https://aistudio.google.com/prompts/new_chat"
    assert config.selectors["prompt"] == "ms-prompt-input-wrapper ms-autosize-textarea textarea"


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_file_overrides_selectors_without_a_release(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"site{suffix}"
    if suffix == ".toml":
        path.write_text('[selectors]\nprompt = "textarea.new-prompt"\n[quota_patterns]\n"slow down" = 120\n')
    else:
        path.write_text(
            json.dumps({"selectors": {"prompt": "textarea.new-prompt"}, "quota_patterns": {"slow down": 120}})
        )
    config = load_site_config(path, "http://127.0.0.1:9/")
    assert config.selectors["prompt"] == "textarea.new-prompt"
    assert config.selectors["run_button"] == SELECTORS["run_button"]
    assert config.url == "http://127.0.0.1:9"
    assert dict(config.quota_patterns) == {"slow down": 120}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[selectors]\nnot_a_selector = 'x'\n", "unknown: ['not_a_selector']"),
        ("[selectors]\nprompt = ''\n", "non-empty strings"),
        ("colour = 'blue'\n", "unknown keys ['colour']"),
        ("[selectors\n", "site.toml"),
    ],
)
def test_a_bad_config_file_is_explained(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "site.toml"
    path.write_text(content)
    with pytest.raises(SiteConfigError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        load_site_config(path)
