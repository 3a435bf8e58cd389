"""The answer exactly as the model wrote it: read from the page's own network answer.

The coordinator, two Chromium children and the replica (pop-ups at load included), with
the official client. The replica records what it sent (`answer`, `thoughts`, `usage`)
and what its page rendered (`text`); the client must get the first, never the second.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from openai.types.shared_params import FunctionDefinition
from playwright.sync_api import sync_playwright

from child.engines.browser import find_chromium
from child.replica.answer import Finish as ReplicaFinish
from tests.support.coordinator import Coordinator, Runs
from tests.support.processes import wait_for
from tests.support.sites import Site, site_and_profiles, start

pytestmark = pytest.mark.skipif(
    find_chromium(None, os.environ) is None, reason="no Chromium: `bash scripts/setup.sh` installs it"
)
MARKDOWN: list[ChatCompletionMessageParam] = [{"role": "user", "content": "answer in markdown please"}]


@pytest.fixture(scope="module")
def served(module_runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Coordinator, Site]]:
    folder = tmp_path_factory.mktemp("answers") / "profiles"
    # Pop-ups stay on (the replica's default): every page load meets them.
    with site_and_profiles(folder, "--first-token-ms", "60", "--token-ms", "5", "--quota-after", "0") as site:
        yield start(module_runs, site, folder), site


def test_markdown_arrives_byte_exact_not_as_the_page_rendered_it(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    answer = run.openai(timeout=60).chat.completions.create(model="replica-flash", messages=MARKDOWN)
    recorded = site.last_reported_run()
    content = answer.choices[0].message.content or ""
    assert content == recorded["answer"]
    # What the test is about: the page's text lost the fences, the ** and the table's pipes,
    # and carries the code block's icon names; a driver reading it could not pass above.
    assert "```python\ndef greet(name):\n    if name:" in content and "| beta | **2** |" in content
    assert recorded["text"] != recorded["answer"] and "content_copy" in recorded["text"]
    assert answer.choices[0].finish_reason == "stop"


def test_markdown_streams_byte_exact(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    stream = run.openai(timeout=60).chat.completions.create(
        model="replica-flash", messages=MARKDOWN, stream=True
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == site.last_run()["answer"]
    pieces = [chunk for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]
    assert len(pieces) > 5  # streamed as the site sent it, not in one piece at the end


def test_thinking_is_reasoning_never_content(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    answer = run.openai(timeout=60).chat.completions.create(model="replica-pro", messages=MARKDOWN)
    recorded = site.last_run()
    message = answer.choices[0].message
    assert recorded["thoughts"] and message.content == recorded["answer"]
    assert "Reading the request" not in (message.content or "")
    assert (message.model_extra or {}).get("reasoning_content") == recorded["thoughts"]


def test_usage_is_the_sites_own_count(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    answer = run.openai(timeout=60).chat.completions.create(model="replica-pro", messages=MARKDOWN)
    usage, recorded = answer.usage, site.last_run()["usage"]
    assert usage is not None
    assert usage.prompt_tokens == recorded["prompt"]
    assert usage.completion_tokens == recorded["candidates"] + recorded["thoughts"]
    assert usage.total_tokens == recorded["total"]
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == recorded["thoughts"]


def test_the_token_limit_ends_with_length(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    stream = run.openai(timeout=60).chat.completions.create(
        model="replica-flash", messages=MARKDOWN, max_tokens=7, stream=True
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    recorded = site.last_run()
    assert recorded["finish"] == ReplicaFinish.MAX_TOKENS and text == recorded["answer"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "length"
    ]


def test_every_run_was_a_temporary_chat_with_the_pages_own_proof(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    run.openai(timeout=60).chat.completions.create(model="replica-flash", messages=MARKDOWN)
    runs = site.runs()
    assert runs and all(r["temporary"] and r["proof_ok"] for r in runs)


def test_health_says_the_answers_came_from_the_network(served: tuple[Coordinator, Site]) -> None:
    run, _ = served
    for child in run.children().values():
        assert child["answers_from_dom"] == 0 and child["selectors_missing"] == []


def test_permission_denied_is_its_own_error(runs: Runs, tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    options = ("--first-token-ms", "20", "--token-ms", "5", "--permission-denied", "replica-flash")
    with site_and_profiles(folder, *options) as site:
        run = start(runs, site, folder)
        client = run.openai(timeout=60, max_retries=0)
        with pytest.raises(openai.PermissionDeniedError) as refused:
            client.chat.completions.create(model="replica-flash", messages=MARKDOWN)
        assert refused.value.code == "permission_denied"
        assert "permission denied" in refused.value.message
        # Tried on a second account, then given up: not a quota, and not every account in turn.
        assert [r["status"] for r in site.runs()] == ["denied", "denied"]
        reasons = {c["id"]: c["cooldown_reason"] for c in run.children().values()}
        assert reasons == {"demo-1": "permission_denied", "demo-2": "permission_denied"}


def test_a_forced_dom_fallback_is_labelled(runs: Runs, tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    with site_and_profiles(folder, "--first-token-ms", "20", "--token-ms", "5") as site:
        forced = tmp_path / "dom.toml"
        forced.write_text(site.site_config.read_text() + 'answer_source = "dom"\n')
        run = start(runs, site, folder, "--site-config", str(forced))
        answer = run.openai(timeout=60).chat.completions.create(
            model="replica-flash", messages=[{"role": "user", "content": "say hi"}]
        )
        assert answer.choices[0].message.content == site.last_run()["answer"]  # plain text survives
        wait_for(
            lambda: sum(c["answers_from_dom"] for c in run.children().values()) == 1,
            30,
            "the fallback to show in the children's health",
        )
        assert "1 answers read from the page, not the network" in run.status().stdout
        assert any(
            line.startswith("coordinator_child_answers_from_dom{") and line.endswith(" 1.0")
            for line in run.get("/metrics").text.splitlines()
        )
        log = "".join(path.read_text() for path in run.log_dir.glob("demo-*.log"))
        assert '"answer_from_dom"' in log


def test_the_pages_scripts_find_no_trace_of_the_driver(served: tuple[Coordinator, Site]) -> None:
    run, _ = served
    run.openai(timeout=60).chat.completions.create(model="replica-flash", messages=MARKDOWN)
    for child in run.children().values():
        with sync_playwright() as playwright:
            browser = playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{child['ports']['browser']}")
            page = browser.contexts[0].pages[0]
            names = page.evaluate("() => Object.getOwnPropertyNames(window)")
        traces = [name for name in names if re.search(r"coordinator|playwright|__pw", name, re.IGNORECASE)]
        assert traces == [], f"globals a page script could find: {traces}"


def test_a_setting_the_model_does_not_offer_is_refused_naming_it(served: tuple[Coordinator, Site]) -> None:
    run, site = served
    before = len(site.runs())
    with pytest.raises(openai.BadRequestError) as refused:
        run.openai(timeout=60, max_retries=0).chat.completions.create(
            model="replica-lite", messages=MARKDOWN, temperature=0.2
        )
    assert refused.value.code == "unsupported_parameter" and refused.value.param == "temperature"
    assert len(site.runs()) == before  # refused before anything was sent


def test_a_function_call_from_the_site_reaches_the_client_as_a_tool_call(
    served: tuple[Coordinator, Site],
) -> None:
    run, site = served
    properties = {"query": {"type": "string"}, "limit": {"type": "integer"}, "ratio": {"type": "number"},
                  "exact": {"type": "boolean"}, "cursor": {"type": "null"},
                  "filters": {"type": "object", "properties": {"tags": {"type": "array"}}}}  # fmt: skip
    lookup: FunctionDefinition = {
        "name": "replica_lookup",
        "parameters": {"type": "object", "properties": properties},
    }
    answer = run.openai(timeout=60).chat.completions.create(
        model="replica-flash",
        messages=[{"role": "user", "content": "look it up with a function call"}],
        tools=[{"type": "function", "function": lookup}],
    )
    recorded = site.last_run()["function_call"]
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.function.name == recorded["name"] == "replica_lookup"
    assert json.loads(call.function.arguments) == recorded["arguments"]  # every Value kind, typed back
