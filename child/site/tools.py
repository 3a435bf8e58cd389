"""Function calling and structured output through the page's "Tools" run settings.

A request's tools become a `ToolPlan` before the page is touched: the declarations and
the response schema as the page's editors take them (`child.site.schema_subset`), the
emulations the page needs, labelled, and how the answer is then held to the request:

- `tool_choice` none: function calling off (the conversation still shows earlier calls);
  auto: the declarations; required, or a named function: the page has no function-calling
  mode (its UI offers none), so it is emulated: only the named function is declared (all
  for `required`), a last line asks the model for the call, and an answer without one is
  `invalid_output`. Labelled `tool_choice` in `emulated`.
- `parallel_tool_calls: false`: the page has no such setting; the answer keeps the first
  call and the others are dropped (logged `tool_calls_dropped`), labelled `parallel_tool_calls`.
- a schema the page's editor takes only loosely is labelled `adapted`; the answer is then
  checked against the client's own schema (`child.output_check`), and a function's
  description carries its full schema, so the model still reads every rule.

On the page (`SET_TOOLS`, one round trip): the collapsed "Tools" group is opened, each
toggle set, and where one is on its Edit dialog gets the JSON, Save, then opened again to
check what the page kept. The driver skips all of it when the page is known to have
both toggles off and the request wants none (`PageTools`): requests don't leak into each
other, and a request without tools costs nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import structlog

from child.engines.base import NotSupported
from child.output_check import InvalidOutput
from child.site.schema_subset import Unadaptable, adapt
from child.site.scripts import _script
from coordinator.protocol.link import AnswerEvent, Finish, ToolCall
from coordinator.protocol.openai import message_text
from coordinator.protocol.request import ChatOptions, OutputKind, ToolMode

log = structlog.get_logger("child.site.tools")

# The page's rule for a function's name (OpenAI's also allows a digit or "-" first).
_NAME_FIRST: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
JSON_OBJECT: Final = {"type": "object"}
TOOLS_HEADER: Final = "X-Coordinator-Tools"


@dataclass(frozen=True, slots=True)
class PageTools:
    """What the page's Tools group is set to: the JSON each editor holds when its toggle
    is on, None when off."""

    functions: str | None = None
    schema: str | None = None

    @property
    def off(self) -> bool:
        return self.functions is None and self.schema is None


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """One request's tools: what the page gets, what the prompt adds, what the answer owes."""

    page: PageTools = field(default_factory=PageTools)
    instruction: str = ""  # appended to the prompt (an emulation)
    require_call: bool = False
    first_call_only: bool = False
    emulated: tuple[str, ...] = ()
    adapted: tuple[str, ...] = ()  # schema keywords the page could not take
    tools_adapted: bool = False
    output_adapted: bool = False

    @property
    def labels(self) -> dict[str, str]:
        """How the request's tools and output format were carried: `page` (as asked),
        `adapted` (a looser schema on the page, the answer checked against the client's),
        and what is `emulated`. Logged, and the answer's `X-Coordinator-Tools` header."""
        labels = {}
        if self.page.functions is not None:
            labels["tools"] = "adapted" if self.tools_adapted else "page"
        if self.page.schema is not None:
            labels["output"] = "adapted" if self.output_adapted else "page"
        if self.emulated:
            labels["emulated"] = ",".join(self.emulated)
        return labels

    def log(self) -> None:
        """One line for a request with tools or a JSON format: labels, sizes, keyword names
        (never the declarations' or the schema's content)."""
        if self.page.off and not self.emulated:
            return
        log.info(
            "tools_planned",
            **self.labels,
            adapted=list(self.adapted),
            declarations_chars=len(self.page.functions or ""),
            schema_chars=len(self.page.schema or ""),
        )

    @property
    def headers(self) -> dict[str, str]:
        labels = self.labels
        return {TOOLS_HEADER: "; ".join(f"{k}={v}" for k, v in labels.items())} if labels else {}


def plan_tools(options: ChatOptions) -> ToolPlan:
    """The plan for a request's tools and output format, or NotSupported naming the field
    the page cannot take even loosely."""
    choice = options.tool_choice
    emulated: list[str] = []
    adapted: set[str] = set()
    output_adapted: set[str] = set()
    functions: str | None = None
    instruction = ""
    if options.calls_tools:
        tools = [t for t in options.tools if choice.function is None or t.name == choice.function]
        declarations = []
        for index, tool in enumerate(options.tools):
            if tool not in tools:
                continue
            param = f"tools[{index}].function"
            if tool.name[0] not in _NAME_FIRST:
                why = "the page takes function names that start with a letter or '_'"
                raise NotSupported(f"{param}.name", why)
            declarations.append(_declaration(tool.name, tool.description, tool.parameters, param, adapted))
        functions = json.dumps(declarations, ensure_ascii=False)
        if choice.mode is ToolMode.REQUIRED:
            emulated.append("tool_choice")
            instruction = (
                f"\n\n(Answer with a function call of {choice.function}.)"
                if choice.function
                else "\n\n(Answer with a function call.)"
            )
    if options.calls_tools and not options.parallel_tool_calls:
        emulated.append("parallel_tool_calls")
    schema: str | None = None
    output = options.output
    if output.kind is OutputKind.JSON_SCHEMA:
        assert output.schema is not None
        try:
            result = adapt(output.schema)
        except Unadaptable as exc:
            why = f"the page's schema editor cannot hold it: {exc}"
            raise NotSupported("response_format.json_schema.schema", why) from None
        output_adapted.update(result.dropped)
        schema = json.dumps(result.schema, ensure_ascii=False)
    elif output.kind is OutputKind.JSON_OBJECT:
        # Any object: the page's structured output wants a schema, and one left from an
        # earlier request must not bind this one.
        schema = json.dumps(JSON_OBJECT)
    page = PageTools(functions, schema)
    return ToolPlan(
        page=page,
        instruction=instruction,
        require_call=options.calls_tools and choice.mode is ToolMode.REQUIRED,
        first_call_only=options.calls_tools and not options.parallel_tool_calls,
        emulated=tuple(emulated),
        adapted=tuple(sorted(adapted | output_adapted)),
        tools_adapted=bool(adapted),
        output_adapted=bool(output_adapted),
    )


def _declaration(
    name: str, description: str, parameters: Mapping[str, Any] | None, param: str, adapted: set[str]
) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": name}
    if parameters:
        try:
            result = adapt(parameters)
        except Unadaptable as exc:
            raise NotSupported(f"{param}.parameters", f"the page's editor cannot hold it: {exc}") from None
        if result.dropped:
            adapted.update(result.dropped)
            # The rules the page's schema lost, still in front of the model: its description.
            full = json.dumps(parameters, ensure_ascii=False, separators=(",", ":"))
            description = f"{description}\n\nThe arguments follow this JSON Schema: {full}".strip()
        declaration["parameters"] = result.schema
    if description:
        declaration["description"] = description
    return declaration


async def held_to_plan(
    events: AsyncIterator[AnswerEvent], plan: ToolPlan
) -> AsyncGenerator[AnswerEvent, None]:
    """The answer's events as the plan owes them: the first call only when parallel calls
    are off, and a call at all when the tool choice requires one."""
    calls = dropped = 0
    async for event in events:
        if isinstance(event, ToolCall):
            calls += 1
            if plan.first_call_only and calls > 1:
                dropped += 1
                continue
        if isinstance(event, Finish):
            if dropped:
                log.info("tool_calls_dropped", dropped=dropped, reason="parallel_tool_calls is false")
            if plan.require_call and not calls:
                raise InvalidOutput(
                    "the model answered without the function call tool_choice requires "
                    "(emulated: the page has no function-calling mode)"
                )
        yield event


# -- the conversation's tool turns, as text --------------------------------------------------


def call_names(messages: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each earlier call's id → its function's name, so a tool result can say whose it is."""
    names = {}
    for message in messages:
        for call in message.get("tool_calls") or ():
            if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping):
                names[str(call.get("id"))] = str(call["function"].get("name"))
    return names


def tool_turn(message: Mapping[str, Any], names: Mapping[str, str]) -> tuple[str, str] | None:
    """A message of the tool loop as (label, text): an assistant's calls, a tool's result;
    None for any other message."""
    role = message.get("role")
    if role == "assistant" and (message.get("tool_calls") or message.get("function_call")):
        lines = [text] if (text := message_text(dict(message)).strip()) else []
        calls = message.get("tool_calls") or [{"id": None, "function": message["function_call"]}]
        for call in calls:
            function = call.get("function") or {}
            ident = f" [id {call['id']}]" if call.get("id") else ""
            arguments = function.get("arguments") or "{}"
            lines.append(f"calls {function.get('name')}{ident} with arguments {arguments}")
        return "Assistant", "\n".join(lines)
    if role == "tool":
        ident = str(message.get("tool_call_id"))
        name = message.get("name") or names.get(ident, "a function")
        return f"Tool result of {name} [id {ident}]", message_text(dict(message)).strip()
    if role == "function":
        return f"Tool result of {message.get('name')}", message_text(dict(message)).strip()
    return None


# -- on the page -----------------------------------------------------------------------------

# The Tools group set as `want` says ({functions, schema}: JSON text, or null for off); `failed` names the key
# that went wrong, `refused` carries the editor's own words when Save did not take the JSON.
SET_TOOLS: Final = _script(
    "async ([s, want, ms])",
    """
  const result = {failed: null, refused: null, editor: null, opened: false};
  const fail = (key) => { result.failed = key; return result; };
  const type = (element, value) => {
    const prototype = Object.getPrototypeOf(element);
    Object.getOwnPropertyDescriptor(prototype, "value").set.call(element, value);
    element.dispatchEvent(new Event("input", {bubbles: true}));
    element.dispatchEvent(new Event("change", {bubbles: true}));
  };
  const checked = (key) => {
    const element = q(document, s[key]);
    return element ? element.getAttribute("aria-checked") === "true" : null;
  };
  // A page (or model) without the group, or without a toggle, has nothing on to turn off.
  const wantsAny = want.functions !== null || want.schema !== null;
  const header = q(document, s.tools_group);
  if (!header) return wantsAny ? fail("tools_group") : result;
  if (header.getAttribute("aria-expanded") !== "true") {
    header.click();
    result.opened = true;
    const shown = () => header.getAttribute("aria-expanded") === "true"
      && (q(document, s.function_calling_toggle) || q(document, s.structured_output_toggle));
    if (!(await waitFor(shown, ms)) && wantsAny) return fail("tools_group");
  }
  const toggle = async (key, on) => {
    if (checked(key) === null) return !on;
    if (checked(key) === on) return true;
    const element = q(document, s[key]);
    if (disabled(element)) return false;
    element.click();
    return (await waitFor(() => checked(key) === on, ms)) !== null;
  };
  const closeDialog = async (editorKey) => {
    const close = q(document, s.tool_dialog_close);
    if (close) close.click();
    return (await waitFor(() => !q(document, s[editorKey]), ms)) !== null;
  };
  // The dialog's code editor: there at once, or once its Code Editor tab is chosen.
  const codeEditor = async (editorKey) => {
    const shown = await waitFor(() => q(document, s[editorKey]) || q(document, s.code_editor_tab), ms);
    if (!shown || q(document, s[editorKey])) return shown && q(document, s[editorKey]);
    q(document, s.code_editor_tab).click();
    return await waitFor(() => q(document, s[editorKey]), ms);
  };
  const edit = async (editKey, editorKey, saveKey, text) => {
    const enabled = () => { const b = q(document, s[editKey]); return b && !disabled(b) ? b : null; };
    const button = await waitFor(enabled, ms);
    if (!button) return editKey;
    button.click();
    const editor = await codeEditor(editorKey);
    if (!editor) return editorKey;
    type(editor, text);
    const save = q(document, s[saveKey]);
    if (!save) { await closeDialog(editorKey); return saveKey; }
    save.click();
    const error = () => { const e = q(document, s.tool_editor_error); return e && e.textContent.trim(); };
    const settled = () => (!q(document, s[editorKey]) ? "saved" : error() ? "refused" : null);
    const outcome = await waitFor(settled, ms);
    if (outcome !== "saved") {
      result.refused = outcome === "refused" ? error() : null;
      result.editor = editorKey;
      await closeDialog(editorKey);
      return outcome === "refused" ? null : editorKey;
    }
    // Saved: opened again to read what the page kept.
    button.click();
    const again = await codeEditor(editorKey);
    if (!again) return editorKey;
    let kept = null;
    try { kept = JSON.stringify(JSON.parse(again.value)); } catch (e) { kept = null; }
    await closeDialog(editorKey);
    return kept === JSON.stringify(JSON.parse(text)) ? true : editorKey;
  };
  const steps = [
    ["structured_output_toggle", want.schema !== null, want.schema,
     "schema_edit", "schema_editor", "schema_save"],
    ["function_calling_toggle", want.functions !== null, want.functions,
     "function_declarations_edit", "function_declarations_editor", "function_declarations_save"],
  ];
  for (const [key, on, text, editKey, editorKey, saveKey] of steps) {
    if (!(await toggle(key, on))) return fail(key);
    if (on && text !== null) {
      const done = await edit(editKey, editorKey, saveKey, text);
      if (done === null) return result;
      if (done !== true) return fail(done);
    }
  }
  return result;
""",
)
