"""The replica's chat page in a real headless Chromium: the selectors of the research note,
progressive answers, stop, New chat, run settings, model choice, quota, login.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from child.replica import QUOTA_MESSAGE, answer_for
from tests.support.processes import wait_for
from tests.support.replica import SESSION, OpenPage, StartReplica, ThreadedReplica

# The selectors as shared/research/aistudio-page.md lists them; the driver uses the same.
TEXTAREA = "ms-prompt-input-wrapper ms-autosize-textarea textarea"
RUN = 'button[aria-label="Run"].run-button'
RUN_SUBMIT = 'ms-run-button button[type="submit"].run-button'
SPINNER = 'button[aria-label="Run"].run-button svg .stoppable-spinner'
MODEL_TURN = "ms-chat-turn .chat-turn-container.model"
USER_TURN = "ms-chat-turn .chat-turn-container.user"
CMARK = "ms-cmark-node.cmark-node"
NEW_CHAT = 'button[data-test-clear="outside"][aria-label="New chat"]'
DISCARD = "button.ms-button-primary"
NAV_NEW_CHAT = 'a.playground-link[href="/prompts/new_chat"]'
DIALOG = ".mat-mdc-dialog-inner-container"
TOAST = "div.toast.warning, div.toast.error"
TEMPERATURE = 'ms-slider input[type="number"][max="2"]'
TOP_P = 'ms-slider input[type="number"][max="1"]'
MAX_TOKENS = 'input[aria-label="Maximum output tokens"]'
ADD_STOP = 'input[aria-label="Add stop token"]'
REMOVE_STOP = 'mat-chip-set mat-chip-row button[aria-label*="Remove"]'
EDIT_LAST = "ms-chat-turn:last-child .actions-container button.toggle-edit-button"

LAST_MODEL_TEXT = """() => {
  const turns = document.querySelectorAll("ms-chat-turn .chat-turn-container.model");
  if (turns.length === 0) return null;
  return [...turns[turns.length - 1].querySelectorAll("ms-cmark-node.cmark-node")]
    .map((node) => node.textContent).join("");
}"""

LONG_PROMPT = " ".join(f"word{i}" for i in range(30))


def model_text(page: Page) -> str | None:
    text: str | None = page.evaluate(LAST_MODEL_TEXT)
    return text


def submit(page: Page, prompt: str) -> None:
    page.locator(TEXTAREA).fill(prompt)
    page.locator(TEXTAREA).press("Control+Enter")


def wait_run(replica: ThreadedReplica, index: int, status: str, timeout: float = 5.0) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        runs = replica.runs()
        return runs[index] if len(runs) > index and runs[index]["status"] == status else None

    run: dict[str, Any] = wait_for(reached, timeout, f"run {index} to be {status}")
    return run


def generating(start_replica: StartReplica, open_page: OpenPage, words: int) -> tuple[ThreadedReplica, Page]:
    """A page in the middle of a slow answer that already shows `words` words."""
    replica = start_replica(token_ms=100)
    page = open_page(replica)
    submit(page, LONG_PROMPT)
    wait_tokens(page, words)
    return replica, page


def wait_tokens(page: Page, count: int) -> None:
    """Until the last model turn shows at least `count` words."""
    page.wait_for_function(
        f"() => (({LAST_MODEL_TEXT})() || '').split(/\\s+/).filter(Boolean).length >= {count}", timeout=5_000
    )


def test_every_selector_of_the_research_note_matches(replica: ThreadedReplica, open_page: OpenPage) -> None:
    page = open_page(replica)
    static = (TEXTAREA, RUN, RUN_SUBMIT, NEW_CHAT, NAV_NEW_CHAT, TEMPERATURE, TOP_P, MAX_TOKENS, ADD_STOP)
    for selector in static:
        expect(page.locator(selector)).to_have_count(1)
        expect(page.locator(selector)).to_be_visible()
    expect(page.locator(TEMPERATURE)).to_have_value("1")
    expect(page.locator(TOP_P)).to_have_value("0.95")
    expect(page.locator(MAX_TOKENS)).to_have_value("8192")
    expect(page.locator(RUN)).to_be_disabled()
    page.locator(TEXTAREA).fill("   ")
    expect(page.locator(RUN)).to_be_disabled()
    page.locator(TEXTAREA).fill("hi")
    expect(page.locator(RUN)).to_be_enabled()

    page.locator(ADD_STOP).fill("STOP")
    page.locator(ADD_STOP).press("Enter")
    expect(page.locator("mat-chip-set mat-chip-row")).to_have_text("STOP")
    expect(page.locator(REMOVE_STOP)).to_have_attribute("aria-label", "Remove STOP")
    page.locator(REMOVE_STOP).click()
    expect(page.locator("mat-chip-set mat-chip-row")).to_have_count(0)

    page.locator(RUN).click()
    expect(page.locator(SPINNER)).to_have_count(0)
    expect(page.locator(USER_TURN)).to_have_count(1)
    expect(page.locator(MODEL_TURN)).to_have_count(1)
    expect(page.locator(f"{MODEL_TURN} {CMARK}")).to_have_text(answer_for("hi", "replica-pro", 8192, []))
    expect(page.locator(EDIT_LAST)).to_have_count(1)

    page.locator(NEW_CHAT).click()
    expect(page.locator(DIALOG)).to_be_visible()
    expect(page.locator(DISCARD)).to_have_text("Discard and continue")


def test_ctrl_enter_renders_the_answer_progressively(replica: ThreadedReplica, open_page: OpenPage) -> None:
    page = open_page(replica)
    # Sample the answer and the spinner on every change of the page, from the page itself.
    page.evaluate(
        """([textOf, spinner]) => {
          window.samples = [];
          const sample = () => window.samples.push(
            { text: eval(textOf)(), spinner: document.querySelector(spinner) !== null });
          new MutationObserver(sample).observe(document.body,
            { childList: true, subtree: true, characterData: true });
        }""",
        [LAST_MODEL_TEXT, SPINNER],
    )
    submit(page, "context line\nTell me about the replica please")
    expected = answer_for("context line\nTell me about the replica please", "replica-pro", 8192, [])
    page.wait_for_function(
        "(expected) => window.samples.some((s) => s.text === expected && !s.spinner)", arg=expected
    )
    samples: list[dict[str, Any]] = page.evaluate("window.samples")
    partial = [s["text"] for s in samples if s["spinner"] and s["text"]]
    assert len(set(partial)) >= 5, samples
    assert all(expected.startswith(text) for text in partial)
    assert partial == sorted(partial, key=len)
    assert samples[-1] == {"text": expected, "spinner": False}
    assert model_text(page) == expected
    run = wait_run(replica, 0, "completed")
    assert (run["text"], run["answer"]) == (expected, expected)
    expect(page.locator(TEXTAREA)).to_have_value("")
    expect(page.locator(RUN)).to_be_disabled()


def test_clicking_run_mid_generation_stops_it(start_replica: StartReplica, open_page: OpenPage) -> None:
    replica, page = generating(start_replica, open_page, words=4)
    expect(page.locator(SPINNER)).to_have_count(1)
    page.locator(RUN).click()
    expect(page.locator(SPINNER)).to_have_count(0)
    run = wait_run(replica, 0, "stopped")
    shown = model_text(page)
    # The text the page reported is still what it shows: nothing rendered after the stop.
    assert run["text"] == shown
    assert shown and len(shown) < len(run["answer"]) and run["answer"].startswith(shown)
    expect(page.locator(RUN)).to_be_disabled()


def test_new_chat_asks_then_discards_turns_and_stops_generation(
    start_replica: StartReplica, open_page: OpenPage
) -> None:
    replica, page = generating(start_replica, open_page, words=2)
    page.locator(NEW_CHAT).click()
    page.locator(f"{DIALOG} button", has_text="Cancel").click()
    expect(page.locator(DIALOG)).to_have_count(0)
    expect(page.locator(MODEL_TURN)).to_have_count(1)

    page.locator(NEW_CHAT).click()
    page.locator(DISCARD, has_text="Discard and continue").click()
    expect(page.locator(DIALOG)).to_have_count(0)
    expect(page.locator("ms-chat-turn")).to_have_count(0)
    expect(page.locator(SPINNER)).to_have_count(0)
    run = wait_run(replica, 0, "stopped")
    assert 0 < len(run["text"]) < len(run["answer"])


def test_settings_and_stop_chips_reach_the_run(replica: ThreadedReplica, open_page: OpenPage) -> None:
    page = open_page(replica)
    page.locator(TEMPERATURE).fill("0.3")
    page.locator(TOP_P).fill("0.5")
    page.locator(MAX_TOKENS).fill("6")
    for stop in ("big", "XYZ"):
        page.locator(ADD_STOP).fill(stop)
        page.locator(ADD_STOP).press("Enter")
    page.locator('mat-chip-set mat-chip-row button[aria-label="Remove XYZ"]').click()
    submit(page, "hello big world again")
    run = wait_run(replica, 0, "completed")
    expected = answer_for("hello big world again", "replica-pro", 6, ["big"])
    assert expected == "Replica replica-pro answers: hello "
    assert {key: run[key] for key in ("temperature", "top_p", "max_tokens", "stop", "text", "answer")} == {
        "temperature": 0.3,
        "top_p": 0.5,
        "max_tokens": 6,
        "stop": ["big"],
        "text": expected,
        "answer": expected,
    }
    assert model_text(page) == expected


def test_model_chosen_in_local_storage_reaches_the_run(replica: ThreadedReplica, open_page: OpenPage) -> None:
    page = open_page(replica)
    expect(page.locator("span.model-name")).to_have_text("replica-pro")
    page.evaluate(
        """() => localStorage.setItem("aiStudioUserPreference",
             JSON.stringify({ promptModel: "models/replica-flash", other: 1 }))"""
    )
    with page.expect_response(lambda response: "ListModels" in response.url) as listed:
        page.reload()
    assert {"models/replica-pro", "models/replica-flash"} <= set(listed.value.text().split('"'))
    expect(page.locator("span.model-name")).to_have_text("replica-flash")
    submit(page, "which model?")
    run = wait_run(replica, 0, "completed")
    assert run["model"] == "replica-flash"
    assert run["text"] == answer_for("which model?", "replica-flash", 8192, [])

    page.evaluate("""() => localStorage.setItem("aiStudioUserPreference", '{"promptModel": "models/x"}')""")
    page.reload()
    expect(page.locator("span.model-name")).to_have_text("replica-pro")


def test_quota_shows_a_toast_until_new_chat(start_replica: StartReplica, open_page: OpenPage) -> None:
    replica = start_replica(quota_after=1)
    page = open_page(replica)
    submit(page, "first")
    wait_run(replica, 0, "completed")
    expect(page.locator(SPINNER)).to_have_count(0)
    submit(page, "second")
    expect(page.locator(TOAST)).to_have_text(QUOTA_MESSAGE)
    expect(page.locator("div.toast.error")).to_have_count(1)
    expect(page.locator(SPINNER)).to_have_count(0)
    expect(page.locator(MODEL_TURN)).to_have_count(1)  # no answer for the refused run
    assert replica.runs()[1]["status"] == "quota"
    page.locator(NEW_CHAT).click()
    page.locator(DISCARD).click()
    expect(page.locator(TOAST)).to_have_count(0)


def test_reload_mid_generation_reports_the_run_stopped(
    start_replica: StartReplica, open_page: OpenPage
) -> None:
    replica, page = generating(start_replica, open_page, words=3)
    page.reload()
    run = wait_run(replica, 0, "stopped")
    assert run["answer"].startswith(run["text"]) and len(run["text"]) < len(run["answer"])
    expect(page.locator("ms-chat-turn")).to_have_count(0)


def test_login_flow_leads_back_to_the_chat(replica: ThreadedReplica, open_page: OpenPage) -> None:
    page = open_page(replica, session="stale-session")
    assert page.url == replica.url + "/login?continue=/prompts/new_chat"
    page.locator('input[name="email"]').fill("demo@example.com")
    page.locator('input[name="password"]').fill("secret")
    page.locator("button#sign-in").click()
    page.wait_for_url(replica.url + "/prompts/new_chat")
    expect(page.locator(TEXTAREA)).to_be_visible()
    submit(page, "after login")
    run = wait_run(replica, 0, "completed")
    assert run["session"] not in {SESSION, "stale-session"}
