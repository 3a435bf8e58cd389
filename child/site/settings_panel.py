"""The page's settings beyond sampling: system instructions, thinking level, and the Google
Search and URL context tools (issue 12, items 2, 5 and 6), as one step of the request flow.

What a request asks becomes a plan (`PanelState.plan`): the system instruction to put in
its field, the thinking levels to try in order, the tools to turn on or off. A request
that leaves one out puts back what an earlier request changed (the page keeps these from
one chat to the next), so requests never leak into each other. The plan runs in the page
in one round trip (`APPLY`); its result says what was set, or which selector failed.

The mapping of a reasoning effort to a level: efforts and levels share one scale
(minimal 1, low 2, medium 3, high 4; none 0, xhigh and max 5) and the model's level
nearest to the effort wins, the higher one on a tie (medium on a Low/High model is High);
`none` is the model's lowest level. Which level was used goes back to the client as
`X-Coordinator-Thinking-Level`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import structlog

from child.engines.base import NotSupported, Prompt
from child.site.errors import DriverError, UnsupportedSetting, missing
from child.site.scripts import script
from coordinator.protocol.link import SettingApplied
from coordinator.protocol.openai import message_text

log = structlog.get_logger("child.site.settings_panel")

SYSTEM_ROLES: Final = frozenset({"system", "developer"})
LEVELS: Final = ("minimal", "low", "medium", "high")
_EFFORT_RANK: Final = {"none": 0, "minimal": 1, "low": 2, "medium": 3, "high": 4, "xhigh": 5, "max": 5}
THINKING_HEADER: Final = "Thinking-Level"
# The step each selector of this module belongs to, in errors.
STEP_OF: Final = {
    "system_instructions": "system_instructions",
    "system_text": "system_instructions",
    "system_close": "system_instructions",
    "thinking_level": "thinking_level",
    "thinking_option": "thinking_level",
    "search_tool": "tools",
    "url_context_tool": "tools",
    "tools_group": "tools",
}


def system_instruction(messages: Sequence[Mapping[str, Any]]) -> str:
    """The system and developer messages as the text of the System instructions field.

    A lone unnamed one goes as it is; otherwise each is labelled, its `name` kept, as the
    prompt labels turns ("System (name): …")."""
    found: list[tuple[str | None, str]] = []
    for message in messages:
        if message.get("role") not in SYSTEM_ROLES:
            continue
        text = message_text(dict(message)).strip()
        name = message.get("name")
        if text:
            found.append((name if isinstance(name, str) else None, text))
    if len(found) == 1 and found[0][0] is None:
        return found[0][1]
    return "\n\n".join(f"System ({name}): {text}" if name else f"System: {text}" for name, text in found)


def without_system(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The messages that go in the prompt; all of them when only system text was sent (the
    page cannot submit an empty prompt, so that text stays the prompt)."""
    rest = [message for message in messages if message.get("role") not in SYSTEM_ROLES]
    return rest if any(message_text(dict(message)).strip() for message in rest) else list(messages)


def level_preference(effort: str) -> tuple[str, ...]:
    """Every level, nearest to `effort` first (the higher on a tie): the page takes the first
    one its model offers."""
    target = _EFFORT_RANK[effort]
    return tuple(
        sorted(LEVELS, key=lambda level: (abs(LEVELS.index(level) + 1 - target), -LEVELS.index(level)))
    )


@dataclass(slots=True)
class PanelState:
    """What earlier requests changed on the page, so the next one can put it back."""

    system_set: bool = False
    default_levels: dict[str, str] = field(default_factory=dict)  # model → level the page had
    levels_moved: set[str] = field(default_factory=set)  # models whose level a request changed
    tools_on: set[str] = field(default_factory=set)

    def plan(self, prompt: Prompt, model: str) -> dict[str, Any] | None:
        """What APPLY must do for `prompt` on `model`; None: nothing to touch."""
        options = prompt.options
        if options.web_search and options.calls_tools:
            raise NotSupported(
                "web_search_options", "the page turns Google Search off while function calling is on"
            )
        inlined = len(without_system(prompt.messages)) == len(prompt.messages)
        system = "" if inlined else system_instruction(prompt.messages)
        plan: dict[str, Any] = {"system": None, "levels": None, "strict_level": False, "tools": {}}
        # What this plan may change is taken as changed until the page says otherwise: a
        # step that fails halfway must still be put back by the next request.
        if system or self.system_set:
            plan["system"] = system
            self.system_set = self.system_set or bool(system)
        if options.reasoning_effort is not None:
            plan["levels"], plan["strict_level"] = list(level_preference(options.reasoning_effort)), True
            self.levels_moved.add(model)
        elif model in self.levels_moved and model in self.default_levels:
            plan["levels"] = [self.default_levels[model].lower()]
        for key, wanted in (("search_tool", options.web_search), ("url_context_tool", options.url_context)):
            if wanted or key in self.tools_on:
                plan["tools"][key] = wanted
                if wanted:
                    self.tools_on.add(key)
        if plan["system"] is None and plan["levels"] is None and not plan["tools"]:
            return None
        return plan

    def read(
        self,
        result: Mapping[str, Any],
        prompt: Prompt,
        model: str,
        selectors: Mapping[str, str],
        waited_s: float,
    ) -> tuple[SettingApplied, ...]:
        """The page's result of APPLY: remembered, and the settings to report; raises what failed."""
        if result.get("system") is not None:
            self.system_set = bool(result["system"])
        for key, on in result.get("tools", {}).items():
            (self.tools_on.add if on else self.tools_on.discard)(key)
        if result.get("before") and model not in self.default_levels:
            self.default_levels[model] = str(result["before"])
        if result.get("level") and str(result["level"]).lower() == self.default_levels.get(model, "").lower():
            self.levels_moved.discard(model)  # back at the page's default
        if result.get("unsupported"):
            raise UnsupportedSetting(
                result["unsupported"],
                model,
                " (If it should, a selector of the page's settings may be out of date: see --site-config.)",
            )
        if result.get("disabled"):
            raise NotSupported(result["disabled"], f"the page keeps that tool off for {model} now")
        key = result.get("missing")
        if key:
            raise missing(STEP_OF.get(key, "settings"), key, selectors[key], waited_s)
        if result.get("mismatch"):
            raise DriverError(
                STEP_OF[result["mismatch"]],
                "does not hold the text typed into it after it was closed and opened again",
                key=result["mismatch"],
                selector=selectors[result["mismatch"]],
            )
        if result.get("no_level"):
            raise DriverError(
                "thinking_level",
                f"offers none of the levels known here: {result['no_level']}",
                key="thinking_option",
                selector=selectors["thinking_option"],
            )
        level = str(result.get("level") or "").lower()
        asked = prompt.options.reasoning_effort
        if not level or asked is None:
            return ()
        log.info("thinking_level", model=model, reasoning_effort=asked, level=level)
        return (SettingApplied(THINKING_HEADER, level),)


# One round trip: the system instruction typed into its field (the panel opened, then
# closed, then opened again to check the page kept it), the thinking level chosen from its
# list, the tools switched; the focus back in the prompt so the submit is a bare key press.
APPLY: Final = script(
    "async ([s, plan, ms])",
    """
  const result = {missing: null, unsupported: null, disabled: null, mismatch: null, no_level: null,
                  system: null, level: null, before: null, tools: {}};
  const type = (element, value) => {
    const prototype = Object.getPrototypeOf(element);
    Object.getOwnPropertyDescriptor(prototype, "value").set.call(element, value);
    element.dispatchEvent(new Event("input", {bubbles: true}));
    element.dispatchEvent(new Event("change", {bubbles: true}));
  };
  const openPanel = async () => {
    let area = q(document, s.system_text);
    if (area) return area;
    const button = q(document, s.system_instructions);
    if (!button) { result.missing = "system_instructions"; return null; }
    button.click();
    area = await waitFor(() => q(document, s.system_text), ms);
    if (!area) result.missing = "system_text";
    return area;
  };
  const closePanel = async () => {
    const close = q(document, s.system_close);
    if (!close) { result.missing = "system_close"; return false; }
    close.click();
    if (await waitFor(() => !q(document, s.system_text), ms)) return true;
    result.missing = "system_close";
    return false;
  };
  if (plan.system !== null) {
    let area = await openPanel();
    if (!area) return result;
    if (area.value !== plan.system) type(area, plan.system);
    if (!(await closePanel())) return result;
    area = await openPanel();
    if (!area) return result;
    const kept = area.value;
    if (!(await closePanel())) return result;
    if (kept !== plan.system) { result.mismatch = "system_text"; return result; }
    result.system = kept;
  }
  // The select's shown value, without its arrow icon's text.
  const shownLevel = (select) => (q(select, ".mat-mdc-select-value-text, .mat-mdc-select-value")
                                  || select).textContent.trim();
  if (plan.levels !== null) {
    const select = q(document, s.thinking_level);
    if (!select) {
      if (plan.strict_level) { result.unsupported = "reasoning_effort"; return result; }
    } else {
      result.before = shownLevel(select);
      select.click();
      const options = await waitFor(() => { const found = qa(document, s.thinking_option);
                                            return found.length ? found : null; }, ms);
      if (!options) { result.missing = "thinking_option"; return result; }
      const named = (want) => options.find((o) => o.textContent.trim().toLowerCase() === want);
      const wanted = plan.levels.map(named).find((option) => option);
      if (!wanted) {
        result.no_level = options.map((o) => o.textContent.trim()).join(", ");
        const backdrop = q(document, ".cdk-overlay-backdrop");
        if (backdrop) backdrop.click();
        return result;
      }
      const name = wanted.textContent.trim();
      wanted.click();
      const shown = await waitFor(() => !qa(document, s.thinking_option).length
        && q(document, s.thinking_level) && shownLevel(q(document, s.thinking_level)) === name, ms);
      if (!shown) { result.missing = "thinking_level"; return result; }
      result.level = name;
    }
  }
  const params = {search_tool: "web_search_options", url_context_tool: "url_context"};
  const switches = Object.keys(plan.tools);
  // The switches sit in the collapsed Tools group: opened only when a request needs them.
  if (switches.length && !switches.some((key) => q(document, s[key]))) {
    const header = q(document, s.tools_group);
    if (header && header.getAttribute("aria-expanded") !== "true") {
      header.click();
      const opened = () => { const now = q(document, s.tools_group);
                             return now && now.getAttribute("aria-expanded") === "true"; };
      if (!(await waitFor(opened, ms))) { result.missing = "tools_group"; return result; }
    }
  }
  for (const [key, want] of Object.entries(plan.tools)) {
    // Angular draws a group's content just after it opens: a moment for a switch asked for.
    const toggle = q(document, s[key]) || (want ? await waitFor(() => q(document, s[key]), Math.min(ms, 1000))
                                               : null);
    if (!toggle) {
      if (want) { result.unsupported = params[key]; return result; }
      result.tools[key] = false;  // not on this model's page: nothing to turn off
      continue;
    }
    // Read afresh: the page may render its settings again on a click.
    const on = (element = q(document, s[key])) => !!element
      && element.getAttribute("aria-checked") === "true";
    if (on(toggle) !== want) {
      if (disabled(toggle)) { result.disabled = params[key]; return result; }
      toggle.click();
      if (!(await waitFor(() => on() === want, ms))) { result.missing = key; return result; }
    }
    result.tools[key] = want;
  }
  const prompt = q(document, s.prompt);
  if (prompt) prompt.focus();
  return result;
""",
)
