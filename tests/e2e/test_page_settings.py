"""The page's settings beyond sampling, end to end: system instructions, the thinking level
for a reasoning effort, Google Search and URL context with their sources as `url_citation`
annotations (issue 12, items 2, 5 and 6).

One coordinator with one Chromium child (so every request meets the page the one before
left: a setting that leaks shows), the replica, and the official client. The replica
records what its page sent (`system`, the thinking level, the tools) and what its model
answered; its model quotes a system instruction, thinks by level and cites its sources.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from child.engines.browser import find_chromium
from tests.support import schemas
from tests.support.coordinator import Coordinator, Runs
from tests.support.sites import Site, site_and_profiles, start

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        find_chromium(None, os.environ) is None, reason="no Chromium: `bash scripts/setup.sh` installs it"
    ),
]
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def served(module_runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Coordinator, Site]]:
    folder = tmp_path_factory.mktemp("settings") / "profiles"
    with site_and_profiles(folder, "--first-token-ms", "40", "--token-ms", "3", "--no-popups") as site:
        (folder / "demo-2.json").unlink()  # one child: each request finds the page the last one left
        yield start(module_runs, site, folder), site


def extra(item: Any, name: str) -> Any:
    return (item.model_extra or {}).get(name)


# -- system instructions ----------------------------------------------------------------


def test_system_message_goes_in_the_field_not_the_prompt(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    client = run.openai(timeout=60)
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Speak like a pirate"},
        {"role": "user", "content": "hello there"},
    ]
    answer = client.chat.completions.create(model="replica-flash", messages=messages)
    recorded = site.last_run()
    assert recorded["system"] == "Speak like a pirate" and recorded["prompt"] == "hello there"
    # The model saw it as its system instruction: its answer quotes it.
    assert answer.choices[0].message.content == (
        "Replica replica-flash answers: hello there (system instruction: Speak like a pirate)"
    )
    # The next request has none: the field is empty again, nothing leaks.
    answer = client.chat.completions.create(model="replica-flash", messages=HELLO)
    assert site.last_run()["system"] == "" and answer.choices[0].message.content == (
        "Replica replica-flash answers: hello there"
    )


def test_names_and_developer_messages_are_kept_in_the_field(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Be brief", "name": "captain"},
        {"role": "developer", "content": "Answer in English"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]
    run.openai(timeout=60).chat.completions.create(model="replica-pro", messages=messages, stream=False)
    recorded = site.last_run()
    assert recorded["system"] == "System (captain): Be brief\n\nSystem: Answer in English"
    assert "Be brief" not in recorded["prompt"] and "English" not in recorded["prompt"]
    assert recorded["prompt"].endswith("User: second question")


# -- thinking level ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "effort", "level"),
    [
        ("replica-flash", "low", "Low"),
        ("replica-flash", "xhigh", "High"),
        ("replica-pro", "medium", "High"),  # pro offers Low and High: a tie goes up
        ("replica-pro", "none", "Low"),  # the lowest the model has
    ],
)
def test_reasoning_effort_sets_the_nearest_thinking_level(
    served: tuple[Coordinator, Site], model: str, effort: str, level: str
) -> None:
    run, site = served
    raw = run.openai(timeout=60).chat.completions.with_raw_response.create(
        model=model,
        messages=HELLO,
        reasoning_effort=effort,  # type: ignore[arg-type]
    )
    answer, recorded = raw.parse(), site.last_run()
    assert recorded["settings"]["thinking_level"] == level
    assert raw.headers["x-coordinator-thinking-level"] == level.lower()
    assert extra(answer.choices[0].message, "reasoning_content") == recorded["thoughts"]
    assert answer.usage is not None and answer.usage.completion_tokens_details is not None
    assert answer.usage.completion_tokens_details.reasoning_tokens == recorded["usage"]["thoughts"] > 0


def test_the_level_thinks_more_or_less_and_streams(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    client = run.openai(timeout=60)
    seen: dict[str, tuple[str, int]] = {}
    for effort in ("low", "medium", "high"):
        raw = client.chat.completions.with_raw_response.create(
            model="replica-flash",
            messages=HELLO,
            reasoning_effort=effort,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        assert raw.headers["x-coordinator-thinking-level"] == effort
        chunks = list(raw.parse())
        reasoning = "".join(extra(c.choices[0].delta, "reasoning_content") or "" for c in chunks if c.choices)
        usage = chunks[-1].usage
        assert usage is not None and usage.completion_tokens_details is not None
        tokens = usage.completion_tokens_details.reasoning_tokens or 0
        assert reasoning == site.last_run()["thoughts"] and tokens == site.last_run()["usage"]["thoughts"]
        seen[effort] = (reasoning, tokens)
    assert 0 < seen["low"][1] < seen["medium"][1] < seen["high"][1]
    # Without an effort the page's own default is back: flash's is Minimal, no thinking at all.
    answer = client.chat.completions.create(model="replica-flash", messages=HELLO)
    assert site.last_run()["settings"]["thinking_level"] == "Minimal"
    assert extra(answer.choices[0].message, "reasoning_content") is None


def test_a_model_without_a_thinking_level_refuses_reasoning_effort(served: tuple[Coordinator, Site]) -> None:
    run, _ = served
    with pytest.raises(openai.BadRequestError) as caught:
        run.openai(timeout=60).chat.completions.create(
            model="replica-lite", messages=HELLO, reasoning_effort="high"
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"]) == ("unsupported_parameter", "reasoning_effort")


# -- Google Search and URL context -------------------------------------------------------


def test_search_sources_arrive_as_url_citations(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    client = run.openai(timeout=60)
    question: list[ChatCompletionMessageParam] = [{"role": "user", "content": "tides of the moon"}]
    answer = client.chat.completions.create(model="replica-flash", messages=question, web_search_options={})
    recorded = site.last_run()
    assert recorded["settings"]["search"] is True
    message = answer.choices[0].message
    content = message.content or ""
    annotations = message.annotations or []
    assert [(a.url_citation.url, a.url_citation.title) for a in annotations] == [
        (source["url"], source["title"]) for source in recorded["sources"]
    ]
    for annotation in annotations:
        cited = annotation.url_citation
        assert annotation.type == "url_citation"
        assert (
            content[cited.start_index : cited.end_index]
            == "Replica Search has two pages about tides of the moon."
        )
    # Streamed: the same annotations, as a delta field of their own.
    chunks = list(
        client.chat.completions.create(
            model="replica-flash", messages=question, web_search_options={}, stream=True
        )
    )
    streamed = [a for c in chunks if c.choices for a in (extra(c.choices[0].delta, "annotations") or [])]
    assert [a["url_citation"] for a in streamed] == [a.url_citation.model_dump() for a in annotations]
    # As OpenAI's schemas have them: the annotated answer, and each chunk of its stream.
    schemas.assert_valid(schemas.CHAT_COMPLETION, answer.model_dump(mode="json", exclude_unset=True))
    for chunk in chunks:
        schemas.assert_valid(schemas.CHAT_COMPLETION_CHUNK, chunk.model_dump(mode="json", exclude_unset=True))
    # A request that does not ask has the switch off again, and no sources.
    answer = client.chat.completions.create(model="replica-flash", messages=question)
    assert site.last_run()["settings"]["search"] is False and not answer.choices[0].message.annotations


def test_url_context_reads_the_urls_of_the_prompt(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    client = run.openai(timeout=60)
    question: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "summarise https://docs.example.org/guide please"}
    ]
    answer = client.chat.completions.create(
        model="replica-pro", messages=question, extra_body={"url_context": True}
    )
    recorded = site.last_run()
    assert recorded["settings"]["url_context"] is True and recorded["settings"]["search"] is False
    message = answer.choices[0].message
    content = message.content or ""
    [annotation] = message.annotations or []
    cited = annotation.url_citation
    assert (cited.url, cited.title) == ("https://docs.example.org/guide", "Page at docs.example.org")
    assert content[cited.start_index : cited.end_index] == (
        "The page https://docs.example.org/guide says hello from docs.example.org."
    )
    client.chat.completions.create(model="replica-pro", messages=question)
    assert site.last_run()["settings"]["url_context"] is False


def test_a_model_without_the_tools_refuses_them(served: tuple[Coordinator, Site]) -> None:
    run, _ = served
    for asked, param in (
        ({"web_search_options": {}}, "web_search_options"),
        ({"url_context": True}, "url_context"),
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            run.openai(timeout=60).chat.completions.create(
                model="replica-lite", messages=HELLO, extra_body=asked
            )
        error = caught.value.body
        assert isinstance(error, dict)
        assert (error["code"], error["param"]) == ("unsupported_parameter", param)
