"""The site driver's pieces that need no browser: prompt text, config overrides, page signals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from child.engines.base import QuotaExhausted
from child.site.driver import (
    SELECTORS,
    AIStudio,
    SiteConfig,
    SiteConfigError,
    conversation_text,
    load_site_config,
)


def test_a_lone_user_message_goes_as_it_is() -> None:
    assert conversation_text([{"role": "user", "content": "  hello  "}]) == "hello"


def test_a_conversation_goes_as_labelled_turns_the_last_one_last() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": "Hello."},
        {"role": "assistant", "content": None},
        {"role": "user", "content": "Why?"},
    ]
    assert conversation_text(messages) == "System: Be terse.\n\nUser: Hi\n\nAssistant: Hello.\n\nUser: Why?"


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


def test_login_redirect_is_recognised() -> None:
    site = AIStudio(SiteConfig(url="http://127.0.0.1:5000"))
    assert site.logged_out("https://accounts.google.com/v3/signin/identifier?continue=x")
    assert site.logged_out("http://127.0.0.1:5000/login?continue=/prompts/new_chat")
    assert not site.logged_out("http://127.0.0.1:5000/prompts/new_chat")


@pytest.mark.parametrize(
    ("toast", "seconds"),
    [
        ("You've reached your rate limit. Please try again later.", 300),
        ("Failed to generate content: user has exceeded quota", 4 * 3600),
        ("You are out of free generations for today", 4 * 3600),
    ],
)
def test_quota_messages_raise_with_a_cooldown(toast: str, seconds: int) -> None:
    site = AIStudio(SiteConfig())
    with pytest.raises(QuotaExhausted) as caught:
        site._check_toast(toast)
    assert caught.value.retry_after == seconds
    site._check_toast("Something else went wrong")  # not a quota message: no exception
