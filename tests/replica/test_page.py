"""The replica's chat page in a real headless Chromium, through the selectors of spec-11 A:
the elements, a run from Ctrl+Enter to its finish markers, markdown and thinking as the
page renders them, Stop, New chat, error callouts, the proof, login and reload.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from child.replica import PERMISSION_MESSAGE, QUOTA_MESSAGE, answer_for
from child.replica.answer import thoughts_for
from tests.replica import contract as ui
from tests.support.replica import PAGE_WAIT_MS, SESSION, OpenPage, StartReplica, ThreadedReplica

pytestmark = pytest.mark.browser

LONG_PROMPT = " ".join(f"word{i}" for i in range(30))


def answer_text(page: Page) -> str | None:
    text: str | None = page.evaluate(ui.LAST_ANSWER_TEXT)
    return text


def submit(page: Page, prompt: str) -> None:
    page.locator(ui.PROMPT).fill(prompt)
    page.locator(ui.PROMPT).press("Control+Enter")


def wait_words(page: Page, count: int) -> None:
    """Until the last model turn's answer shows at least `count` words."""
    page.wait_for_function(
        f"() => (({ui.LAST_ANSWER_TEXT})() || '').split(/\\s+/).filter(Boolean).length >= {count}",
        timeout=PAGE_WAIT_MS,
    )


def generating(start_replica: StartReplica, open_page: OpenPage, words: int) -> tuple[ThreadedReplica, Page]:
    """A page in the middle of a slow answer that already shows `words` words.

    Slow enough (250 ms a word, 8 s in all) that a click on a loaded machine still lands mid-answer."""
    replica = start_replica(token_ms=250)
    page = open_page(replica)
    submit(page, LONG_PROMPT)
    wait_words(page, words)
    return replica, page


def test_the_elements_of_the_contract(replica: ThreadedReplica, open_page: OpenPage) -> None:
    page = open_page(replica)
    for selector in (ui.ZERO_STATE, ui.PROMPT, ui.RUN, ui.MODEL_LABEL, ui.NEW_CHAT, ui.MORE_ACTIONS,
                     ui.SYSTEM_BUTTON, ui.SETTINGS, ui.TEMPERATURE, ui.ADVANCED):  # fmt: skip
        expect(page.locator(selector)).to_have_count(1)
        expect(page.locator(selector)).to_be_visible()
    expect(page.locator(ui.MODEL_LABEL)).to_have_text("replica-flash")
    expect(page.locator(ui.TEMPERATURE)).to_have_value("1")
    expect(page.locator(ui.NEW_CHAT)).to_be_disabled()
    expect(page.locator(ui.RUN)).to_be_disabled()
    expect(page.locator(ui.RUN)).to_contain_text("Run")
    # Collapsed groups, closed menus, answers not yet given: not in the DOM at all.
    for absent in (ui.TOP_P, ui.MAX_TOKENS, ui.ADD_STOP, ui.TEMPORARY, ui.INCOGNITO, ui.SYSTEM_TEXT,
                   ui.STOP, ui.SPINNER, ui.MODEL_TURN, ui.EDIT_BUTTON, ui.DIALOG):  # fmt: skip
        expect(page.locator(absent)).to_have_count(0)
    for old in ("ms-prompt-input-wrapper", "ms-autosize-textarea", 'button[aria-label="Run"]', ".run-button",
                'ms-slider input[type="number"]'):  # fmt: skip
        expect(page.locator(old)).to_have_count(0)
    page.locator(ui.PROMPT).fill("   ")
    expect(page.locator(ui.RUN)).to_be_disabled()
    # As an Angular form control: text put in by script without an input event is not sent.
    page.locator(ui.PROMPT).evaluate("(element) => { element.value = 'set by script'; }")
    page.locator(ui.PROMPT).press("Control+Enter")
    expect(page.locator(ui.USER_TURN)).to_have_count(0)
    expect(page.locator(ui.RUN)).to_be_disabled()
    page.locator(ui.PROMPT).fill("hi")
    expect(page.locator(ui.RUN)).to_be_enabled()
    # The page keeps its proof secret out of the DOM: its boot script removes itself.
    assert (
        page.evaluate("() => [...document.scripts].some((s) => s.textContent.includes('proofKey'))") is False
    )


def test_a_run_streams_then_shows_the_finish_markers(
    start_replica: StartReplica, open_page: OpenPage
) -> None:
    # XHR progress events come at most every 50 ms: slower frames than that show one by one.
    replica = start_replica(token_ms=60)
    page = open_page(replica)
    # Sample the page on every change, from the page itself: answer, Stop, finish markers.
    page.evaluate(
        """([textOf, stop, edit, thumb]) => {
          window.samples = [];
          const turnHas = (selector) => {
            const turns = document.querySelectorAll("ms-chat-turn .chat-turn-container.model");
            return turns.length > 0 && turns[turns.length - 1].querySelector(selector) !== null;
          };
          const sample = () => window.samples.push({
            text: eval(textOf)(),
            stop: document.querySelector(stop) !== null,
            edit: turnHas(edit),
            thumb: turnHas(".turn-footer") && [...document.querySelectorAll(".turn-footer button")]
              .some((button) => button.textContent.includes(thumb)),
          });
          new MutationObserver(sample).observe(document.body,
            { childList: true, subtree: true, characterData: true, attributes: true });
        }""",
        [ui.LAST_ANSWER_TEXT, ui.STOP, "button.toggle-edit-button", "thumb_up"],
    )
    prompt = "context line\nTell me about the replica please"
    submit(page, prompt)
    expect(page.locator(ui.USER_TURN)).to_have_count(1)
    expect(page.locator(ui.ZERO_STATE)).to_have_count(0)
    expect(page.locator(ui.STOP)).to_have_text("Stop")
    expected = answer_for(prompt, "replica-flash", None, [])
    expect(page.locator(f"{ui.MODEL_TURN} {ui.EDIT_BUTTON}")).to_have_count(1)
    expect(page.locator(f"{ui.MODEL_TURN} {ui.THUMB_UP}")).to_have_count(1)
    samples: list[dict[str, Any]] = page.evaluate("window.samples")
    partial = [s["text"] for s in samples if s["stop"] and s["text"]]
    assert len(set(partial)) >= 5, samples
    assert all(expected.startswith(text) for text in partial)
    # Neither finish marker exists while the answer streams.
    assert not any(s["edit"] or s["thumb"] for s in samples if s["stop"])
    assert answer_text(page) == expected
    expect(page.locator(ui.STOP)).to_have_count(0)
    expect(page.locator(ui.PROMPT)).to_have_value("")
    expect(page.locator(ui.RUN)).to_be_disabled()
    expect(page.locator(ui.NEW_CHAT)).to_be_enabled()
    run = replica.wait_run(0, "completed")
    assert (run["text"], run["answer"], run["proof_ok"], run["finish"]) == (expected, expected, True, 1)


def test_markdown_is_rendered_so_the_dom_text_is_not_the_answer(
    replica: ThreadedReplica, open_page: OpenPage
) -> None:
    page = open_page(replica)
    submit(page, "Answer in markdown")
    expect(page.locator(f"{ui.MODEL_TURN} {ui.THUMB_UP}")).to_have_count(1)
    answer = page.locator(f"{ui.MODEL_TURN} {ui.TURN_TEXT}")
    expect(answer.locator("h1")).to_have_text("Replica report")
    expect(answer.locator("strong").first).to_have_text("replica-flash")
    expect(answer.locator("ul > li")).to_have_count(3)
    expect(answer.locator("table td")).to_have_count(4)
    block = answer.locator(ui.CODE_BLOCK)
    expect(block).to_have_count(1)
    expect(block.locator(".code-block-header")).to_contain_text("python")
    expect(block.locator("span.material-symbols-outlined")).to_have_text(["content_copy", "download"])
    expect(block.locator("pre code")).to_contain_text('    if name:\n        return f"hello {name}"')
    run = replica.wait_run(0, "completed")
    raw = answer_for("Answer in markdown", "replica-flash", None, [])
    shown = answer_text(page)
    assert shown is not None and run["answer"] == raw and run["text"] == shown
    assert shown != raw and "```" not in shown and "**" not in shown and "content_copydownload" in shown
    # The raw markdown is there after the end, behind the turn's Edit button.
    page.locator(f"{ui.MODEL_TURN} {ui.EDIT_BUTTON}").click()
    expect(page.locator(f"{ui.MODEL_TURN} textarea")).to_have_attribute("data-value", raw)


def test_thinking_comes_first_in_a_thought_chunk(replica: ThreadedReplica, open_page: OpenPage) -> None:
    page = open_page(replica, path="/prompts/new_chat?model=replica-pro")
    expect(page.locator(ui.MODEL_LABEL)).to_have_text("replica-pro")
    submit(page, "think about it")
    expect(page.locator(f"{ui.MODEL_TURN} {ui.THUMB_UP}")).to_have_count(1)
    thought = page.locator(f"{ui.MODEL_TURN} {ui.THOUGHT}")
    expect(thought).to_have_count(1)
    expect(thought.locator("span.material-symbols-outlined").first).to_have_text("expand_more")
    expect(thought).to_contain_text("Thoughts")
    expect(thought.locator(f"{ui.TURN_TEXT} strong")).to_have_text("Reading the request")
    # Before the answer, in the same turn; the turn's cmark nodes hold both.
    order = page.evaluate(
        """() => [...document.querySelector("ms-chat-turn .chat-turn-container.model .turn-content").children]
              .map((child) => child.tagName.toLowerCase())"""
    )
    assert order == ["ms-thought-chunk", "ms-text-chunk"]
    expect(page.locator(f"{ui.MODEL_TURN} {ui.TURN_TEXT}")).to_have_count(2)
    assert answer_text(page) == "Replica replica-pro answers: think about it"
    run = replica.wait_run(0, "completed")
    assert run["thoughts"] == thoughts_for("think about it", "replica-pro")
    assert run["usage"]["thoughts"] > 0 and run["text"] == "Replica replica-pro answers: think about it"


def test_a_function_call_is_shown_as_its_name_and_arguments(
    replica: ThreadedReplica, open_page: OpenPage
) -> None:
    page = open_page(replica)
    # Declared through the Tools group (tests/replica/test_page_tools.py): no call otherwise.
    page.locator('button[aria-label="Tools"]').click()
    page.locator('[data-test-id="functionCallingTooltip"] button[role="switch"]').click()
    page.locator("button.edit-function-declarations-button").click()
    page.locator("ms-edit-function-declarations-dialog button.code-editor-tab").click()
    properties = {"query": {"type": "string"}, "limit": {"type": "integer"}, "tags": {"type": "array"}}
    lookup = {"name": "replica_lookup", "parameters": {"type": "object", "properties": properties}}
    page.locator("ms-edit-function-declarations-dialog textarea").fill(json.dumps([lookup]))
    page.locator("ms-edit-function-declarations-dialog button.save-button").click()
    submit(page, "try a function call")
    expect(page.locator(f"{ui.MODEL_TURN} {ui.THUMB_UP}")).to_have_count(1)
    chunk = page.locator(f"{ui.MODEL_TURN} ms-function-call-chunk")
    expect(chunk.locator(".function-call-name")).to_have_text("replica_lookup")
    arguments = chunk.locator(f"{ui.CODE_BLOCK} pre code").text_content()
    assert arguments is not None
    assert json.loads(arguments) == replica.wait_run(0, "completed")["function_call"]["arguments"]
    expect(page.locator(f"{ui.MODEL_TURN} {ui.TURN_TEXT}")).to_have_count(0)


def test_stop_aborts_the_request_and_the_server_records_it(
    start_replica: StartReplica, open_page: OpenPage
) -> None:
    replica, page = generating(start_replica, open_page, words=4)
    expect(page.locator(ui.SPINNER)).to_have_count(1)
    page.locator(ui.STOP).click()
    expect(page.locator(ui.SPINNER)).to_have_count(0)
    run = replica.wait_run(0, "stopped")
    shown = answer_text(page)
    full = answer_for(LONG_PROMPT, "replica-flash", None, [])
    # What the page reported is what it shows; the server sent at least that, not all.
    assert run["text"] == shown and run["finish"] is None
    assert shown and run["answer"].startswith(shown) and len(run["answer"]) < len(full)
    expect(page.locator(ui.RUN)).to_be_disabled()
    expect(page.locator(ui.RUN)).not_to_have_attribute("aria-label", "Stop generating")


def test_new_chat_asks_then_discards_and_stops(start_replica: StartReplica, open_page: OpenPage) -> None:
    replica, page = generating(start_replica, open_page, words=2)
    page.locator(ui.NEW_CHAT).click()
    page.locator(f"{ui.DIALOG} button", has_text="Cancel").click()
    expect(page.locator(ui.DIALOG)).to_have_count(0)
    expect(page.locator(ui.MODEL_TURN)).to_have_count(1)

    page.locator(ui.NEW_CHAT).click()
    page.locator(ui.DISCARD).click()
    expect(page.locator(ui.DIALOG)).to_have_count(0)
    expect(page.locator("ms-chat-turn")).to_have_count(0)
    expect(page.locator(ui.ZERO_STATE)).to_have_count(1)
    expect(page.locator(ui.NEW_CHAT)).to_be_disabled()
    expect(page.locator(ui.SPINNER)).to_have_count(0)
    run = replica.wait_run(0, "stopped")
    assert 0 < len(run["text"]) < len(answer_for(LONG_PROMPT, "replica-flash", None, []))


def test_a_second_prompt_carries_the_chat_so_far(replica: ThreadedReplica, open_page: OpenPage) -> None:
    page = open_page(replica)
    submit(page, "one two")
    expect(page.locator(f"{ui.MODEL_TURN} {ui.THUMB_UP}")).to_have_count(1)
    submit(page, "three")
    expect(page.locator(f"{ui.MODEL_TURN} {ui.THUMB_UP}")).to_have_count(2)
    second = replica.wait_run(1, "completed")
    # The earlier prompt and answer count in the prompt tokens; the prompt is the new one.
    assert second["prompt"] == "three" and second["usage"]["prompt"] == 2 + 5 + 1


@pytest.mark.parametrize(
    ("overrides", "path", "message", "status"),
    [
        ({"quota_after": 1}, "", QUOTA_MESSAGE, "quota"),
        ({"permission_denied": frozenset({"replica-flash"})}, "", PERMISSION_MESSAGE, "denied"),
    ],
)
def test_errors_show_a_callout_in_the_turn_and_a_toast(
    start_replica: StartReplica,
    open_page: OpenPage,
    overrides: dict[str, Any],
    path: str,
    message: str,
    status: str,
) -> None:
    replica = start_replica(**overrides)
    page = open_page(replica)
    if status == "quota":
        submit(page, "first")
        replica.wait_run(0, "completed")
        expect(page.locator(ui.STOP)).to_have_count(0)
    submit(page, "refused")
    expect(page.locator(f"{ui.MODEL_TURN} {ui.CALLOUT}")).to_have_text(message)
    expect(page.locator(ui.TOAST)).to_have_text(message)
    expect(page.locator(ui.STOP)).to_have_count(0)
    last_turn = page.locator(ui.MODEL_TURN).last
    expect(last_turn.locator(ui.TURN_TEXT)).to_have_count(0)
    expect(last_turn.locator(ui.THUMB_UP)).to_have_count(0)
    run = replica.wait_run(len(replica.runs()) - 1, status)
    assert run["proof_ok"] is True and run["answer"] == ""


def test_the_page_proves_every_prompt_even_outside_ascii(
    replica: ThreadedReplica, open_page: OpenPage
) -> None:
    page = open_page(replica)
    prompt = "héllo ☃ 𝄞 " + "x" * 200
    submit(page, prompt)
    run = replica.wait_run(0, "completed")
    assert run["proof_ok"] is True and run["prompt"] == prompt
    assert run["session"] == SESSION


def test_reload_mid_generation_stops_the_run(start_replica: StartReplica, open_page: OpenPage) -> None:
    replica, page = generating(start_replica, open_page, words=3)
    page.reload()
    run = replica.wait_run(0, "stopped")
    assert run["answer"].startswith(run["text"]) and len(run["text"]) > 0
    expect(page.locator("ms-chat-turn")).to_have_count(0)
    expect(page.locator(ui.ZERO_STATE)).to_have_count(1)


def test_login_flow_leads_back_to_the_chat(replica: ThreadedReplica, open_page: OpenPage) -> None:
    page = open_page(replica, session="stale-session")
    assert page.url == replica.url + "/login?continue=/prompts/new_chat"
    page.locator('input[name="email"]').fill("demo@example.com")
    page.locator('input[name="password"]').fill("secret")
    page.locator("button#sign-in").click()
    page.wait_for_url(replica.url + "/prompts/new_chat")
    expect(page.locator(ui.PROMPT)).to_be_visible()
    submit(page, "after login")
    run = replica.wait_run(0, "completed")
    assert run["session"] not in {SESSION, "stale-session"}
