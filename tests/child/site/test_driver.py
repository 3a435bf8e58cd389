"""The site driver's pieces that need no browser: prompt text and page signals."""

from __future__ import annotations

from typing import Any

import pytest

from child.engines.base import QuotaExhausted
from child.site.config import SiteConfig
from child.site.driver import AIStudio, conversation_text


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
