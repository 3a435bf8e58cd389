"""The site as data: the researched defaults, and a --site-config file overriding them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from child.site.config import (
    SELECTORS,
    ZERO_STATE_KEYS,
    AnswerSource,
    SiteConfigError,
    alternatives,
    load_site_config,
)


def test_defaults_are_the_2026_page_newest_first() -> None:
    config = load_site_config(None)
    assert config.url == "https://aistudio.google.com"
    assert config.new_chat_url == "https://aistudio.google.com/prompts/new_chat"
    assert (
        config.chat_url("gemini-2.5-pro")
        == "https://aistudio.google.com/prompts/new_chat?model=gemini-2.5-pro"
    )
    assert alternatives(config.selectors["prompt"])[0] == (
        'ms-prompt-box textarea[aria-label="Enter a prompt"]'
    )
    assert config.selectors["zero_state"] == "ms-zero-state"
    assert config.answer_source is AnswerSource.NETWORK
    assert config.answer_host == "alkalimakersuite-pa.clients6.google.com:443"
    assert config.answer_ca is None


def test_no_2025_selector_is_left() -> None:
    every = " ".join(SELECTORS.values())
    for gone in ("ms-prompt-input-wrapper", "ms-autosize-textarea", 'aria-label="Run"', ".run-button"):
        assert gone not in every
    assert set(ZERO_STATE_KEYS) <= set(SELECTORS)


def test_alternatives_split_only_at_top_level_commas() -> None:
    selector = 'a[title="x, y"], b:is(.c, .d) , e'
    assert alternatives(selector) == ['a[title="x, y"]', "b:is(.c, .d)", "e"]
    assert alternatives("ms-zero-state") == ["ms-zero-state"]


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_file_overrides_selectors_without_a_release(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"site{suffix}"
    data = {
        "selectors": {"prompt": "textarea.new-prompt"},
        "quota_patterns": {"slow down": 120},
        "answer_host": "localhost:8443",
        "answer_ca": "ca.pem",
        "answer_source": "dom",
    }
    if suffix == ".toml":
        path.write_text(
            'answer_host = "localhost:8443"\nanswer_ca = "ca.pem"\nanswer_source = "dom"\n'
            '[selectors]\nprompt = "textarea.new-prompt"\n[quota_patterns]\n"slow down" = 120\n'
        )
    else:
        path.write_text(json.dumps(data))
    config = load_site_config(path, "http://127.0.0.1:9/")
    assert config.selectors["prompt"] == "textarea.new-prompt"
    assert config.selectors["run_button"] == SELECTORS["run_button"]
    assert config.url == "http://127.0.0.1:9"
    assert dict(config.quota_patterns) == {"slow down": 120}
    assert config.answer_host == "localhost:8443"
    assert config.answer_ca == tmp_path / "ca.pem"  # beside the config file
    assert config.answer_source is AnswerSource.DOM


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[selectors]\nnot_a_selector = 'x'\n", "unknown: ['not_a_selector']"),
        ("[selectors]\nprompt = ''\n", "non-empty strings"),
        ("colour = 'blue'\n", "unknown keys ['colour']"),
        ("answer_source = 'screen'\n", "answer_source is one of ['network', 'dom']"),
        ("answer_host = ''\n", "answer_host takes a non-empty string"),
        ("[selectors\n", "site.toml"),
    ],
)
def test_a_bad_config_file_is_explained(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "site.toml"
    path.write_text(content)
    with pytest.raises(SiteConfigError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        load_site_config(path)
