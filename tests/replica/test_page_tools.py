"""The replica's "Tools" group in a real headless Chromium: function calling and structured
output, each a toggle and an Edit dialog whose Save refuses what the page's schema lacks,
kept from one chat to the next, and what the page then sends.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from child.site.config import SELECTORS
from child.site.tools import SET_TOOLS
from tests.replica import contract as ui
from tests.support.replica import OpenPage, ThreadedReplica, models_listed

pytestmark = pytest.mark.browser

GROUP = 'button[aria-label="Tools"]'
FUNCTIONS = '[data-test-id="functionCallingTooltip"]'
SCHEMA = '[data-test-id="structuredOutputTooltip"]'
SWITCH = 'button[role="switch"]'
EDITOR = "ms-text-editor textarea"
SAVE = "button.save-button"
ERROR = ".editor-error"
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER = {"name": "get_weather", "parameters": CITY}


def code_tab(page: Page, dialog: str) -> None:
    """The Code Editor tab, once: the dialog opens on the tab used last, Visual at first."""
    tab = page.locator(f"{dialog} button.code-editor-tab")
    if tab.get_attribute("aria-selected") != "true":
        expect(page.locator(f"{dialog} {EDITOR}")).to_have_count(0)
        tab.click()


def submit(page: Page, prompt: str) -> None:
    page.locator(ui.PROMPT).fill(prompt)
    page.locator(ui.PROMPT).press("Control+Enter")


def declare(page: Page, declarations: object) -> None:
    page.locator(f"{FUNCTIONS} button.edit-function-declarations-button").click()
    code_tab(page, "ms-edit-function-declarations-dialog")
    page.locator(f"ms-edit-function-declarations-dialog {EDITOR}").fill(json.dumps(declarations))
    page.locator(f"ms-edit-function-declarations-dialog {SAVE}").click()


def test_function_calling_declares_only_what_the_page_takes_and_survives_a_new_chat(
    replica: ThreadedReplica, open_page: OpenPage
) -> None:
    page = open_page(replica)
    models_listed(page)
    # Collapsed: the settings are not in the page until the group is opened.
    expect(page.locator(FUNCTIONS)).to_have_count(0)
    page.locator(GROUP).click()
    expect(page.locator(GROUP)).to_have_attribute("aria-expanded", "true")
    edit = page.locator(f"{FUNCTIONS} button.edit-function-declarations-button")
    expect(edit).to_be_disabled()  # while function calling is off
    page.locator(f"{FUNCTIONS} {SWITCH}").click()
    expect(page.locator(f"{FUNCTIONS} {SWITCH}")).to_have_attribute("aria-checked", "true")
    # A JSON Schema keyword the page's schema lacks: Save refuses, the dialog stays.
    strict = {**WEATHER, "parameters": {**CITY, "additionalProperties": False}}
    declare(page, [strict])
    expect(page.locator(f"ms-edit-function-declarations-dialog {ERROR}")).to_contain_text(
        'unknown field "additionalProperties"'
    )
    page.locator("ms-edit-function-declarations-dialog button.close-button").click()
    declare(page, [{"name": "1st", "parameters": {"type": "object"}}])
    expect(page.locator(f"ms-edit-function-declarations-dialog {ERROR}")).to_contain_text("must start with")
    page.locator("ms-edit-function-declarations-dialog button.close-button").click()
    declare(page, [WEATHER])
    expect(page.locator("ms-edit-function-declarations-dialog")).to_have_count(0)
    submit(page, "call get_weather")
    run = replica.wait_run(0, "completed")
    assert run["tools"]["functions"] == [{**WEATHER, "description": ""}]
    assert run["function_calls"] == [{"name": "get_weather", "arguments": {"city": "call get_weather"}}]
    expect(page.locator("ms-function-call-chunk .function-call-name")).to_have_text("get_weather")
    # New chat keeps the run settings, tools included.
    page.locator(ui.NEW_CHAT).click()
    page.locator(ui.DISCARD).click()
    submit(page, "call get_weather again")
    assert replica.wait_run(1, "completed")["tools"]["functions"][0]["name"] == "get_weather"
    # Off: nothing declared, and the model calls nothing it was not offered.
    page.locator(ui.NEW_CHAT).click()
    page.locator(ui.DISCARD).click()
    page.locator(f"{FUNCTIONS} {SWITCH}").click()
    submit(page, "call get_weather once more")
    run = replica.wait_run(2, "completed")
    assert run["tools"]["functions"] == [] and run["function_calls"] == []


def test_the_editor_takes_what_was_typed_not_a_value_set_behind_its_back(
    replica: ThreadedReplica, open_page: OpenPage
) -> None:
    page = open_page(replica)
    models_listed(page)
    page.locator(GROUP).click()
    page.locator(f"{FUNCTIONS} {SWITCH}").click()
    page.locator(f"{FUNCTIONS} button.edit-function-declarations-button").click()
    code_tab(page, "ms-edit-function-declarations-dialog")
    editor = page.locator(f"ms-edit-function-declarations-dialog {EDITOR}")
    editor.evaluate("(element, text) => { element.value = text; }", json.dumps([WEATHER]))
    page.locator(f"ms-edit-function-declarations-dialog {SAVE}").click()
    submit(page, "call get_weather")
    assert replica.wait_run(0, "completed")["tools"]["functions"] == []


def test_structured_output_sends_the_schema_and_the_answer_is_its_json(
    replica: ThreadedReplica, open_page: OpenPage
) -> None:
    page = open_page(replica)
    models_listed(page)
    page.locator(GROUP).click()
    expect(page.locator(f"{SCHEMA} button.edit-schema-button")).to_be_disabled()
    page.locator(f"{SCHEMA} {SWITCH}").click()
    page.locator(f"{SCHEMA} button.edit-schema-button").click()
    expect(page.locator("ms-edit-schema-dialog .visual-summary")).to_have_text("No schema")
    code_tab(page, "ms-edit-schema-dialog")
    schema = {"type": "object", "properties": {"n": {"type": "integer"}, "ok": {"type": "boolean"}}}
    page.locator(f"ms-edit-schema-dialog {EDITOR}").fill(json.dumps({**schema, "$defs": {}}))
    page.locator(f"ms-edit-schema-dialog {SAVE}").click()
    expect(page.locator(f"ms-edit-schema-dialog {ERROR}")).to_contain_text('unknown field "$defs"')
    page.locator(f"ms-edit-schema-dialog {EDITOR}").fill(json.dumps(schema))
    page.locator(f"ms-edit-schema-dialog {SAVE}").click()
    expect(page.locator("ms-edit-schema-dialog")).to_have_count(0)
    submit(page, "numbers please")
    run = replica.wait_run(0, "completed")
    assert run["tools"]["response_mime"] == "application/json" and run["tools"]["response_schema"] == schema
    assert json.loads(run["answer"]) == {"n": 1, "ok": True}
    # A reload starts from the page's defaults: structured output off.
    page.reload()
    submit(page, "numbers please")
    assert replica.wait_run(1, "completed")["tools"]["response_mime"] is None


def test_the_drivers_tools_script_sets_reads_back_and_reports_a_refusal(
    replica: ThreadedReplica, open_page: OpenPage
) -> None:
    """child.site.tools.SET_TOOLS on this page: the group opened, the Code Editor tab found,
    the JSON saved and read back; the editor's refusal comes back in its own words."""
    page = open_page(replica)
    models_listed(page)
    selectors = dict(SELECTORS)
    expect(page.locator(ui.PROMPT)).to_be_visible()
    declarations = json.dumps([WEATHER])
    result = page.evaluate(SET_TOOLS, [selectors, {"functions": declarations, "schema": None}, 3000])
    assert (result["failed"], result["refused"], result["opened"]) == (None, None, True)
    expect(page.locator(f"{FUNCTIONS} {SWITCH}")).to_have_attribute("aria-checked", "true")
    expect(page.locator("mat-dialog-container")).to_have_count(0)
    refused = json.dumps([{**WEATHER, "parameters": {**CITY, "additionalProperties": False}}])
    result = page.evaluate(SET_TOOLS, [selectors, {"functions": refused, "schema": None}, 3000])
    assert result["refused"] == 'get_weather.parameters: unknown field "additionalProperties"'
    assert result["editor"] == "function_declarations_editor"
    expect(page.locator("mat-dialog-container")).to_have_count(0)  # closed again
    result = page.evaluate(SET_TOOLS, [selectors, {"functions": None, "schema": None}, 3000])
    assert result["failed"] is None
    expect(page.locator(f"{FUNCTIONS} {SWITCH}")).to_have_attribute("aria-checked", "false")
    submit(page, "call get_weather")
    assert replica.wait_run(0, "completed")["tools"]["functions"] == []
