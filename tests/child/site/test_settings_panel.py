"""The settings step's pure parts: the system instruction out of the messages, the thinking
level for a reasoning effort, and the plan that sets or puts back what a request asks."""

from __future__ import annotations

from typing import Any

import pytest

from child.engines.base import NotSupported, Prompt
from child.site.config import SELECTORS
from child.site.errors import DriverError, UnsupportedSetting
from child.site.settings_panel import (
    PanelState,
    level_preference,
    system_instruction,
    without_system,
)
from coordinator.protocol.link import SettingApplied
from coordinator.protocol.request import ChatOptions, FunctionTool

USER = {"role": "user", "content": "hi"}


def prompt(*messages: dict[str, Any], **options: Any) -> Prompt:
    return Prompt(model="m", messages=messages or (USER,), options=ChatOptions(**options))


def test_a_lone_system_message_is_the_field_as_it_is() -> None:
    assert system_instruction([{"role": "system", "content": "  be brief "}, USER]) == "be brief"


def test_names_and_developer_messages_are_labelled() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "be brief", "name": "captain"},
        USER,
        {"role": "developer", "content": [{"type": "text", "text": "no emoji"}]},
    ]
    assert system_instruction(messages) == "System (captain): be brief\n\nSystem: no emoji"
    assert without_system(messages) == [USER]


def test_system_text_alone_stays_the_prompt() -> None:
    messages = [{"role": "system", "content": "only this"}]
    assert without_system(messages) == messages


@pytest.mark.parametrize(
    ("effort", "first"),
    [("none", "minimal"), ("minimal", "minimal"), ("low", "low"), ("medium", "medium"), ("high", "high"),
     ("xhigh", "high"), ("max", "high")],
)  # fmt: skip
def test_the_effort_s_own_level_comes_first(effort: str, first: str) -> None:
    assert level_preference(effort)[0] == first


def test_a_tie_goes_to_the_higher_level() -> None:
    # A Low/High model asked for medium: High (rank 4) is as near as Low (rank 2).
    offered = ("low", "high")
    assert next(level for level in level_preference("medium") if level in offered) == "high"
    assert next(level for level in level_preference("none") if level in offered) == "low"


def test_nothing_to_do_is_no_plan() -> None:
    assert PanelState().plan(prompt(), "m") is None


def test_the_plan_sets_what_is_asked() -> None:
    plan = PanelState().plan(
        prompt({"role": "system", "content": "s"}, USER, reasoning_effort="low", web_search=True), "m"
    )
    assert plan is not None
    assert plan["system"] == "s" and plan["levels"][0] == "low" and plan["strict_level"]
    assert plan["tools"] == {"search_tool": True}


def test_what_a_request_changed_is_put_back_by_the_next() -> None:
    state = PanelState()
    asked = prompt({"role": "system", "content": "s"}, USER, reasoning_effort="high", url_context=True)
    assert state.plan(asked, "m") is not None
    result = {"system": "s", "level": "High", "before": "Minimal", "tools": {"url_context_tool": True}}
    applied = state.read(result, asked, "m", SELECTORS, 10)
    assert applied == (SettingApplied("Thinking-Level", "high"),)
    plan = state.plan(prompt(), "m")
    assert plan == {"system": "", "levels": ["minimal"], "strict_level": False,
                    "tools": {"url_context_tool": False}}  # fmt: skip
    state.read(
        {"system": "", "level": "Minimal", "tools": {"url_context_tool": False}}, prompt(), "m", SELECTORS, 10
    )
    assert state.plan(prompt(), "m") is None


def test_search_with_function_calling_is_refused_by_name() -> None:
    asked = prompt(web_search=True, tools=(FunctionTool("f"),))
    with pytest.raises(NotSupported) as caught:
        PanelState().plan(asked, "m")
    assert caught.value.param == "web_search_options"


@pytest.mark.parametrize(
    ("result", "error", "said"),
    [
        (
            {"unsupported": "reasoning_effort"},
            UnsupportedSetting,
            "'reasoning_effort' is not offered by the model m",
        ),
        ({"disabled": "web_search_options"}, NotSupported, "'web_search_options' is not supported here"),
        ({"missing": "system_text"}, DriverError, "step system_instructions: selector system_text"),
        ({"mismatch": "system_text"}, DriverError, "does not hold the text typed into it"),
        ({"no_level": "Fast, Slow"}, DriverError, "offers none of the levels known here: Fast, Slow"),
    ],
)
def test_failures_name_the_field_or_the_step_and_selector(
    result: dict[str, Any], error: type[Exception], said: str
) -> None:
    with pytest.raises(error) as caught:
        PanelState().read(result, prompt(), "m", SELECTORS, 10)
    assert said in str(getattr(caught.value, "message", caught.value))


def test_a_step_that_failed_halfway_is_still_put_back() -> None:
    state = PanelState()
    asked = prompt({"role": "system", "content": "s"}, USER, web_search=True)
    state.plan(asked, "m")
    with pytest.raises(DriverError):
        state.read({"missing": "system_close"}, asked, "m", SELECTORS, 10)
    plan = state.plan(prompt(), "m")
    assert plan is not None and plan["system"] == "" and plan["tools"] == {"search_tool": False}
