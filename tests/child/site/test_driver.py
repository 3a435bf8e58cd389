"""The site driver's pieces that need no browser: prompt text, page signals, the answer
through a scripted capture, errors, settings."""

from __future__ import annotations

from typing import Any

import pytest

from child.engines.base import EngineError, PermissionDenied, Prompt, QuotaExhausted, RateLimited
from child.site.config import AnswerSource, SiteConfig
from child.site.driver import AIStudio, bare_model, conversation_text, same_model
from child.site.errors import DriverError
from child.site.trace import AnswerSources
from coordinator.protocol.link import (
    AnswerError,
    AnswerEvent,
    Finish,
    FinishReason,
    ReasoningDelta,
    TextDelta,
    Usage,
)
from coordinator.protocol.openai import RunSettings
from tests.child.site.fakes import ScriptedCapture, ScriptedWatch


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
    ("toast", "seconds", "kind"),
    [
        ("You've reached your rate limit. Please try again later.", 300, RateLimited),
        ("Failed to generate content: user has exceeded quota", 4 * 3600, QuotaExhausted),
        ("You are out of free generations for today", 4 * 3600, QuotaExhausted),
    ],
)
def test_quota_messages_raise_with_a_cooldown(toast: str, seconds: int, kind: type[EngineError]) -> None:
    site = AIStudio(SiteConfig())
    site.model = "gemini-pro"
    with pytest.raises(kind) as caught:
        site._check_toast(toast)
    assert caught.value.retry_after == seconds
    if isinstance(caught.value, QuotaExhausted):
        assert caught.value.model == "gemini-pro"  # a quota is the model's, not the account's
    site._check_toast("Something else went wrong")  # not a quota message: no exception


# -- the answer through the capture (a scripted one) ------------------------------------


def _site(watch: ScriptedWatch, **config: Any) -> AIStudio:
    return AIStudio(SiteConfig(**config), ScriptedCapture(watch))


async def _read(site: AIStudio, watch: ScriptedWatch) -> list[AnswerEvent]:
    return [event async for event in site._network(watch)]


async def test_the_capture_events_are_the_answer_up_to_the_finish() -> None:
    events: list[AnswerEvent] = [
        ReasoningDelta("thinking"),
        TextDelta("**Hello**"),
        Finish(FinishReason.LENGTH, Usage(3, 2)),
        TextDelta("after the end"),
    ]
    watch = ScriptedWatch(events)
    assert await _read(_site(watch), watch) == events[:3]


@pytest.mark.parametrize(
    ("error", "kind", "retry_after"),
    [
        (
            AnswerError("Resource has been exhausted (e.g. check quota).", 429, "quota_exhausted"),
            QuotaExhausted,
            300,
        ),
        (
            AnswerError("The caller does not have permission", 403, "permission_denied"),
            PermissionDenied,
            None,
        ),
    ],
)
async def test_quota_and_permission_become_the_engines_errors(
    error: AnswerError, kind: type[Exception], retry_after: int | None
) -> None:
    watch = ScriptedWatch([TextDelta("a"), error])
    site = _site(watch)
    with pytest.raises(kind) as caught:
        await _read(site, watch)
    assert getattr(caught.value, "retry_after", None) == retry_after
    assert site._reload_next is (kind is PermissionDenied)  # a refused proof: a fresh page next


async def test_another_answer_error_keeps_its_status_and_code() -> None:
    watch = ScriptedWatch([AnswerError("cut", 502, "stream_cut")])
    with pytest.raises(EngineError) as caught:
        await _read(_site(watch), watch)
    assert (caught.value.status, caught.value.code) == (502, "stream_cut")


async def test_a_stream_without_finish_or_gone_quiet_names_the_answer_step() -> None:
    watch = ScriptedWatch([TextDelta("a")])
    with pytest.raises(DriverError, match="step answer: the capture's stream ended without a finish"):
        await _read(_site(watch), watch)
    quiet = ScriptedWatch([TextDelta("a")], stall=5)
    with pytest.raises(DriverError, match="went quiet"):
        await _read(_site(quiet, start_timeout_s=0.05), quiet)


async def test_the_dom_is_read_only_with_a_reason() -> None:
    seen = ScriptedWatch([])
    assert await _site(seen)._source(seen) == (AnswerSource.NETWORK, None)
    unseen = ScriptedWatch([], seen=False)
    source, reason = await _site(unseen)._source(unseen)
    assert source is AnswerSource.DOM and reason and "saw no answer request" in reason
    forced = AIStudio(SiteConfig(answer_source=AnswerSource.DOM), ScriptedCapture(seen))
    assert not forced._network_wanted()
    assert await forced._source(None) == (AnswerSource.DOM, "answer_source = dom in the site config")
    assert await AIStudio(SiteConfig())._source(None) == (AnswerSource.DOM, "the capture is disabled")
    assert not AIStudio(SiteConfig())._network_wanted()


def test_answer_sources_count_each_dom_reading() -> None:
    sources = AnswerSources().counted(AnswerSource.DOM, "the capture is disabled")
    sources = sources.counted(AnswerSource.NETWORK)
    sources = sources.counted(AnswerSource.DOM, "forced")
    assert (sources.last, sources.reason, sources.network, sources.dom) == (AnswerSource.DOM, "forced", 1, 2)


# -- settings -----------------------------------------------------------------------------


def _prompt(**settings: Any) -> Prompt:
    return Prompt("replica-flash", ({"role": "user", "content": "hi"},), RunSettings(**settings))


def test_a_setting_a_request_left_out_goes_back_to_the_pages_default() -> None:
    site = AIStudio(SiteConfig())
    first = _prompt(temperature=0.5, max_tokens=100)
    assert site._targets(first) == {
        "temperature": {"value": "0.5", "strict": True},
        "max_tokens": {"value": "100", "strict": True},
    }
    site._remember(first, {"temperature": "1", "max_tokens": "8192"})
    # Only what was moved is put back, and not strictly: a model without it is no error.
    assert site._targets(_prompt()) == {
        "temperature": {"value": "1", "strict": False},
        "max_tokens": {"value": "8192", "strict": False},
    }
    site._remember(_prompt(), {"temperature": "1", "max_tokens": "8192"})
    assert site._targets(_prompt()) == {}


def test_the_model_label_is_compared_without_prefix_or_case() -> None:
    assert same_model("models/Replica-Flash", "replica-flash")
    assert not same_model("replica-pro", "replica-flash")
    assert not same_model(None, "replica-flash")
    assert bare_model(" models/gemini-2.5-pro") == "gemini-2.5-pro"
