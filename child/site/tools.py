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
- a function the page cannot take at all (a name it refuses, a recursive schema) is
  offered through the prompt instead: a preamble lists it and asks for each call as a
  `<tool_call>{"name", "arguments"}</tool_call>` line, and such lines in the answer become
  its calls. The answer's text is then held back until its end (a call may come after
  text). Labelled `tools` in `emulated`.

On the page (`SET_TOOLS`, one round trip): the collapsed "Tools" group is opened, each
toggle set, and where one is on its Edit dialog gets the JSON, Save, then opened again to
check what the page kept. The driver skips all of it when the page is known to have
both toggles off and the request wants none (`PageTools`): requests don't leak into each
other, and a request without tools costs nothing.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import structlog

from child.engines.base import NotSupported
from child.output_check import InvalidOutput
from child.site.schema_subset import Unadaptable, adapt
from child.site.scripts import _script
from coordinator.protocol.link import AnswerEvent, Finish, FinishReason, TextDelta, ToolCall
from coordinator.protocol.openai import message_text
from coordinator.protocol.request import ChatOptions, OutputKind, ToolMode

log = structlog.get_logger("child.site.tools")

# The page's rule for a function's name (OpenAI's also allows a digit or "-" first).
_NAME_FIRST: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
JSON_OBJECT: Final = {"type": "object"}
TOOLS_HEADER: Final = "X-Coordinator-Tools"
# The emulation through the prompt: the preamble's first words, and a call in the answer.
PROMPTED: Final = "Functions you may call through this prompt (JSON):"
CALL_LINE: Final = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


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
    preamble: str = ""  # put before the conversation (the functions offered through the prompt)
    instruction: str = ""  # appended to the prompt (an emulation)
    prompted: tuple[str, ...] = ()  # the names of the functions offered through the prompt
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
        elif self.prompted:
            labels["tools"] = "prompt"
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
    preamble = instruction = ""
    prompted: list[dict[str, Any]] = []
    if options.calls_tools:
        declarations = []
        for tool in options.tools:
            if choice.function is not None and tool.name != choice.function:
                continue
            if tool.name[0] in _NAME_FIRST:
                try:
                    declarations.append(_declaration(tool.name, tool.description, tool.parameters, adapted))
                    continue
                except Unadaptable:
                    pass
            # A name the page refuses, or a schema its editor cannot hold: through the prompt.
            offered = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
            prompted.append({key: value for key, value in offered.items() if value})
        functions = json.dumps(declarations, ensure_ascii=False) if declarations else None
        if prompted:
            emulated.append("tools")
            preamble = (
                f"{PROMPTED} {json.dumps(prompted, ensure_ascii=False)}\n"
                "To call one of them, answer with one line per call and nothing else on it: "
                '<tool_call>{"name": NAME, "arguments": {...}}</tool_call>\n\n'
            )
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
        preamble=preamble,
        instruction=instruction,
        prompted=tuple(function["name"] for function in prompted),
        require_call=options.calls_tools and choice.mode is ToolMode.REQUIRED,
        first_call_only=options.calls_tools and not options.parallel_tool_calls,
        emulated=tuple(emulated),
        adapted=tuple(sorted(adapted | output_adapted)),
        tools_adapted=bool(adapted),
        output_adapted=bool(output_adapted),
    )


def _declaration(
    name: str, description: str, parameters: Mapping[str, Any] | None, adapted: set[str]
) -> dict[str, Any]:
    """The page's declaration of a function; Unadaptable if its editor cannot hold the schema."""
    declaration: dict[str, Any] = {"name": name}
    if parameters:
        result = adapt(parameters)
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
    """The answer's events as the plan owes them: calls of functions offered through the
    prompt read from its text, the first call only when parallel calls are off, and a call
    at all when the tool choice requires one."""
    calls = dropped = 0
    held: list[str] = []  # the text, while a call through the prompt may still come
    async for event in events:
        if plan.prompted and isinstance(event, TextDelta):
            held.append(event.text)
            continue
        if isinstance(event, Finish) and plan.prompted:
            text, prompted = prompted_calls("".join(held), plan.prompted)
            for made in ([TextDelta(text)] if text.strip() else []) + prompted:
                if isinstance(made, ToolCall):
                    calls += 1
                    if plan.first_call_only and calls > 1:
                        dropped += 1
                        continue
                yield made
            if prompted and event.reason is FinishReason.STOP:
                event = Finish(FinishReason.TOOL_CALLS, event.usage)
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


def prompted_calls(text: str, names: Sequence[str]) -> tuple[str, list[AnswerEvent]]:
    """The answer's text without its call lines, and the calls of the functions offered
    through the prompt they make (a line naming another function stays text)."""
    calls: list[AnswerEvent] = []

    def take(match: re.Match[str]) -> str:
        try:
            call = json.loads(match.group(1))
        except ValueError:
            return match.group(0)
        if not isinstance(call, dict) or call.get("name") not in names:
            return match.group(0)
        arguments = call.get("arguments")
        arguments = arguments if isinstance(arguments, dict) else {}
        calls.append(ToolCall(f"call_{secrets.token_hex(12)}", call["name"], json.dumps(arguments)))
        return ""

    rest = CALL_LINE.sub(take, text)
    return (rest.strip() if calls else rest), calls


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
