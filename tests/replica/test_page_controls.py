"""The replica's page around the prompt, in a real headless Chromium: pop-ups that block it
at load, the more-actions menu and temporary chat, system instructions, run settings and
the advanced group that exists only when open, the model choice, and drift.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Request, Route, expect

from child.replica import DRIFTS, answer_for
from tests.replica import contract as ui
from tests.support.replica import OpenPage, StartReplica, ThreadedReplica, models_listed

pytestmark = pytest.mark.browser

PREFERENCE = "aiStudioUserPreference"


def submit(page: Page, prompt: str) -> None:
    page.locator(ui.PROMPT).fill(prompt)
    page.locator(ui.PROMPT).press("Control+Enter")


def set_preference(page: Page, preference: dict[str, object]) -> None:
    page.evaluate(
        "([key, value]) => localStorage.setItem(key, JSON.stringify(value))", [PREFERENCE, preference]
    )


def test_pop_ups_block_the_page_until_dismissed(start_replica: StartReplica, open_page: OpenPage) -> None:
    replica = start_replica(popups=True)
    page = open_page(replica)
    expect(page.locator(ui.COOKIE_BAR)).to_be_visible()
    expect(page.locator(ui.SKIP_VOTE)).to_be_visible()
    expect(page.locator(f"{ui.SURVEY} {ui.SURVEY_FRAME}")).to_have_count(1)
    page.locator(ui.PROMPT).fill("blocked?")
    # The modal vote swallows Ctrl+Enter (the handler runs before press() returns)...
    page.locator(ui.PROMPT).press("Control+Enter")
    expect(page.locator(ui.USER_TURN)).to_have_count(0)
    # ... and its backdrop takes every click meant for the page.
    with pytest.raises(PlaywrightError, match="intercepts pointer events"):
        page.locator(ui.RUN).click(timeout=3_000)
    page.locator(ui.SKIP_VOTE).click()
    expect(page.locator(ui.DIALOG)).to_have_count(0)
    # Still under the survey (over Run), and the cookie bar under it.
    with pytest.raises(PlaywrightError, match="hats-survey"):
        page.locator(ui.RUN).click(timeout=3_000)
    page.locator(ui.CLOSE_SURVEY).click()
    with pytest.raises(PlaywrightError, match="glue-cookie-notification-bar"):
        page.locator(ui.RUN).click(timeout=3_000)
    page.locator(ui.COOKIE_ACCEPT).click()
    page.locator(ui.RUN).click()
    expect(page.locator(f"{ui.MODEL_TURN} {ui.THUMB_UP}")).to_have_count(1)
    assert replica.wait_run(0, "completed")["prompt"] == "blocked?"
    # Consent is remembered; the vote and the survey come back with every load.
    page.reload()
    expect(page.locator(ui.SKIP_VOTE)).to_be_visible()
    expect(page.locator(ui.SURVEY)).to_have_count(1)
    expect(page.locator("div.glue-cookie-notification-bar")).to_have_count(0)


def test_temporary_chat_lives_in_the_menu_and_reaches_the_run(
    replica: ThreadedReplica, open_page: OpenPage
) -> None:
    page = open_page(replica)
    expect(page.locator(ui.TEMPORARY)).to_have_count(0)
    page.locator(ui.MORE_ACTIONS).click()
    expect(page.locator(f"{ui.MENU} {ui.TEMPORARY}")).to_have_attribute("aria-checked", "false")
    page.keyboard.press("Escape")
    expect(page.locator(ui.MENU)).to_have_count(0)
    # A menu left open takes the next click itself: it closes, the click goes nowhere.
    page.locator(ui.MORE_ACTIONS).click()
    page.locator(ui.PROMPT).fill("temporary")
    with pytest.raises(PlaywrightError, match="intercepts pointer events"):
        page.locator(ui.RUN).click(timeout=3_000)
    page.mouse.click(5, 5)
    expect(page.locator(ui.MENU)).to_have_count(0)
    expect(page.locator(ui.USER_TURN)).to_have_count(0)

    page.locator(ui.MORE_ACTIONS).click()
    page.locator(ui.TEMPORARY).click()
    expect(page.locator(ui.MENU)).to_have_count(0)
    expect(page.locator(ui.INCOGNITO)).to_be_visible()
    page.locator(ui.RUN).click()
    assert replica.wait_run(0, "completed")["temporary"] is True
    # Kept across New chat; off again after a reload.
    page.locator(ui.NEW_CHAT).click()
    page.locator(ui.DISCARD).click()
    expect(page.locator(ui.INCOGNITO)).to_have_count(1)
    page.locator(ui.MORE_ACTIONS).click()
    expect(page.locator(ui.TEMPORARY)).to_have_attribute("aria-checked", "true")
    page.keyboard.press("Escape")
    page.reload()
    expect(page.locator(ui.PROMPT)).to_be_visible()
    expect(page.locator(ui.INCOGNITO)).to_have_count(0)
    submit(page, "saved")
    assert replica.wait_run(1, "completed")["temporary"] is False


def test_system_instructions_panel(replica: ThreadedReplica, open_page: OpenPage) -> None:
    page = open_page(replica)
    expect(page.locator(ui.SYSTEM_TEXT)).to_have_count(0)
    page.locator(ui.SYSTEM_BUTTON).click()
    page.locator(ui.SYSTEM_TEXT).fill("Answer in one word")
    # The panel lies over the run settings until closed.
    with pytest.raises(PlaywrightError, match="intercepts pointer events"):
        page.locator(ui.ADVANCED).click(timeout=3_000)
    page.locator(ui.SYSTEM_CLOSE).click()
    expect(page.locator(ui.SYSTEM_TEXT)).to_have_count(0)
    submit(page, "one two")
    run = replica.wait_run(0, "completed")
    assert run["system"] == "Answer in one word" and run["usage"]["prompt"] == 2 + 4
    page.locator(ui.SYSTEM_BUTTON).click()
    expect(page.locator(ui.SYSTEM_TEXT)).to_have_value("Answer in one word")


def test_the_advanced_group_exists_only_while_open(replica: ThreadedReplica, open_page: OpenPage) -> None:
    page = open_page(replica)
    advanced = page.locator(ui.ADVANCED)
    expect(advanced).to_have_attribute("aria-expanded", "false")
    for field in (ui.TOP_P, ui.MAX_TOKENS, ui.ADD_STOP):
        expect(page.locator(field)).to_have_count(0)
    advanced.click()
    expect(advanced).to_have_attribute("aria-expanded", "true")
    expect(page.locator(ui.TOP_P)).to_have_value("0.95")
    expect(page.locator(ui.MAX_TOKENS)).to_have_value("65536")
    page.locator(ui.MAX_TOKENS).fill("7")
    advanced.click()
    expect(page.locator(ui.MAX_TOKENS)).to_have_count(0)
    # The value outlives its field; the preference opens the group at the next load.
    page.reload()
    expect(page.locator(ui.MAX_TOKENS)).to_have_count(0)
    set_preference(page, {"isAdvancedOpen": True})
    page.reload()
    expect(page.locator(ui.ADVANCED)).to_have_attribute("aria-expanded", "true")
    expect(page.locator(ui.MAX_TOKENS)).to_be_visible()


def test_settings_and_stop_chips_reach_the_run(replica: ThreadedReplica, open_page: OpenPage) -> None:
    page = open_page(replica)
    models_listed(page)  # or the list's arrival resets what is typed before it
    page.locator(ui.TEMPERATURE).fill("0.3")
    page.locator(ui.ADVANCED).click()
    page.locator(ui.TOP_P).fill("0.5")
    page.locator(ui.MAX_TOKENS).fill("6")
    for stop in ("big", "XYZ"):
        page.locator(ui.ADD_STOP).fill(stop)
        page.locator(ui.ADD_STOP).press("Enter")
    expect(page.locator(ui.STOP_CHIP)).to_have_count(2)
    expect(page.locator(ui.REMOVE_STOP).last).to_have_attribute("aria-label", "Remove XYZ")
    page.locator('mat-chip button.remove-button[aria-label="Remove XYZ"]').click()
    expect(page.locator(ui.STOP_CHIP)).to_have_count(1)
    submit(page, "hello big world again")
    run = replica.wait_run(0, "completed")
    assert run["settings"] == {"temperature": 0.3, "top_p": 0.5, "max_tokens": 6, "stop": ["big"],
                               "thinking_level": "Minimal", "search": False,
                               "url_context": False}  # fmt: skip
    # The answer ends in the space before the stop sequence; the rendered paragraph does not.
    assert (run["answer"], run["text"]) == (
        "Replica replica-flash answers: hello ",
        "Replica replica-flash answers: hello",
    )
    assert run["finish"] == 1
    # Out-of-range values are clamped and shown clamped once the field is left.
    page.locator(ui.TEMPERATURE).fill("7")
    page.locator(ui.TEMPERATURE).blur()
    expect(page.locator(ui.TEMPERATURE)).to_have_value("2")
    page.locator(ui.STOP_CHIP).locator("button").click()
    page.locator(ui.MAX_TOKENS).fill("3")
    submit(page, "cut me short")
    run = replica.wait_run(1, "completed")
    assert (run["answer"], run["finish"], run["settings"]["temperature"]) == (
        "Replica replica-flash answers:",
        2,
        2,
    )


def test_model_from_the_url_then_the_preference_then_the_default(
    replica: ThreadedReplica, open_page: OpenPage
) -> None:
    page = open_page(replica)
    expect(page.locator(ui.MODEL_LABEL)).to_have_text("replica-flash")
    # The first load's model list has arrived, so that only the reload's goes through the
    # route below.
    models_listed(page)
    set_preference(page, {"promptModel": "models/replica-pro", "other": 1})
    # The reload's list, as the replica sent it, read as it passes through a route: the
    # browser may report the first load's request finished only now, and may have let go
    # of a response's body by the time the test would ask for it.
    listed: list[tuple[Request, Any]] = []

    def capture(route: Route) -> None:
        if route.request.method != "POST":  # its CORS preflight has the same URL
            route.continue_()
            return
        answer = route.fetch()
        listed.append((route.request, answer.json()))
        route.fulfill(response=answer)

    page.route("**/*ListModels", capture)
    with page.expect_request_finished(lambda request: any(request is seen for seen, _ in listed)):
        page.reload()
    page.unroute("**/*ListModels", capture)
    ((request, body),) = listed
    assert (
        request.url
        == replica.api_url
        + "/$rpc/google.internal.alkali.applications.makersuite.v1.MakerSuiteService/ListModels"
    )
    assert [entry[0] for entry in body[0]] == [
        "models/replica-pro",
        "models/replica-flash",
        "models/replica-lite",
    ]
    page.goto(replica.url + "/prompts/new_chat?model=replica-lite")
    expect(page.locator(ui.MODEL_LABEL)).to_have_text("replica-lite")
    # An unknown model falls back to the default, whatever the preference says.
    page.goto(replica.url + "/prompts/new_chat?model=gemini-9")
    expect(page.locator(ui.MODEL_LABEL)).to_have_text("replica-flash")
    page.goto(replica.url + "/prompts/new_chat")
    expect(page.locator(ui.MODEL_LABEL)).to_have_text("replica-pro")
    set_preference(page, {"promptModel": "models/unknown"})
    page.reload()
    expect(page.locator(ui.MODEL_LABEL)).to_have_text("replica-flash")
    # The selector writes the preference.
    page.locator("ms-model-selector button").click()
    page.locator(".model-option", has_text="replica-pro").click()
    expect(page.locator(ui.MODEL_LABEL)).to_have_text("replica-pro")
    submit(page, "which model?")
    run = replica.wait_run(0, "completed")
    assert run["model"] == "replica-pro" and run["answer"] == answer_for(
        "which model?", "replica-pro", None, []
    )
    page.reload()
    expect(page.locator(ui.MODEL_LABEL)).to_have_text("replica-pro")


def test_a_model_without_sampling_has_no_such_fields(replica: ThreadedReplica, open_page: OpenPage) -> None:
    page = open_page(replica, path="/prompts/new_chat?model=replica-lite")
    expect(page.locator(ui.MODEL_LABEL)).to_have_text("replica-lite")
    page.locator(ui.ADVANCED).click()
    expect(page.locator(ui.MAX_TOKENS)).to_be_visible()
    expect(page.locator(ui.TEMPERATURE)).to_have_count(0)
    expect(page.locator(ui.TOP_P)).to_have_count(0)
    submit(page, "no sampling")
    run = replica.wait_run(0, "completed")
    assert (run["settings"]["temperature"], run["settings"]["top_p"]) == (None, None)


def test_drift_renames_the_elements_and_the_page_still_works(
    start_replica: StartReplica, open_page: OpenPage
) -> None:
    replica = start_replica(drift=frozenset(DRIFTS))
    page = open_page(replica)
    for selector in (ui.ZERO_STATE, ui.PROMPT, ui.RUN, ui.MODEL_LABEL, ui.NEW_CHAT, ui.MORE_ACTIONS,
                     ui.SYSTEM_BUTTON, ui.TEMPERATURE, ui.ADVANCED):  # fmt: skip
        expect(page.locator(selector)).to_have_count(0)
    expect(page.locator("ms-empty-state")).to_have_count(1)
    expect(page.locator('[data-test-id="model-title"]')).to_have_text("replica-flash")
    page.locator('button[aria-label="More settings"]').click()
    expect(page.locator('input[aria-label="Output length"]')).to_be_visible()
    for selector in (ui.MAX_TOKENS, ui.ADD_STOP, ui.TOP_P):
        expect(page.locator(selector)).to_have_count(0)
    prompt = page.locator('ms-prompt-box textarea[aria-label="Type something"]')
    prompt.fill("Drifted, in markdown")
    page.locator('ms-send-button button[type="submit"]').click()
    expect(page.locator(".turn-frame.model .turn-feedback")).to_have_count(1)
    for selector in (ui.MODEL_TURN, ui.TURN_TEXT, ui.CODE_BLOCK, ui.EDIT_BUTTON, ui.THUMB_UP):
        expect(page.locator(selector)).to_have_count(0)
    expect(page.locator("ms-markdown-block.markdown-block ms-code-snippet")).to_have_count(1)
    run = replica.wait_run(0, "completed")
    assert run["proof_ok"] is True and "ms-" not in run["text"]
