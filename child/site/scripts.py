"""The JavaScript the driver runs inside the page, each a function Playwright evaluates.

Kept apart from the request flow: these are read, tested and fixed as page code. Each
step that can be done in the page is done in one `evaluate` (one round trip), waiting
inside the page for what the page renders asynchronously (a menu, a dialog, a group's
content) with a MutationObserver and a deadline, never a sleep.

Clicks from here are DOM clicks: the page's framework handles them like a user's, and
they are not stopped by a pop-up lying over the button. Pop-ups are dismissed anyway,
since the page itself ignores keys and clicks while a modal is open.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Final

# Shared by the scripts below (pasted into each: an evaluated function has no imports).
_HELPERS: Final = """
  const q = (root, selector) => {
    try { return selector ? root.querySelector(selector) : null; } catch (e) { return null; }
  };
  const qa = (root, selector) => {
    try { return selector ? Array.from(root.querySelectorAll(selector)) : []; } catch (e) { return []; }
  };
  const waitFor = (test, ms) => new Promise((resolve) => {
    const first = test();
    if (first) { resolve(first); return; }
    let timer = null;
    const observer = new MutationObserver(() => {
      const value = test();
      if (value) { observer.disconnect(); clearTimeout(timer); resolve(value); }
    });
    observer.observe(document.documentElement,
      {subtree: true, childList: true, attributes: true, characterData: true});
    timer = setTimeout(() => { observer.disconnect(); resolve(test() || null); }, ms);
  });
  const disabled = (el) => el.disabled || el.getAttribute("aria-disabled") === "true";
  const dismiss = (s, keys) => {
    const done = [];
    for (const key of keys) {
      const button = q(document, s[key]);
      if (button) { button.click(); done.push(key); }
    }
    return done;
  };
  const closeMenu = async (s, ms) => {
    if (!q(document, s.menu)) return true;
    const backdrop = q(document, ".cdk-overlay-backdrop");
    if (backdrop) backdrop.click();
    const target = document.activeElement || document.body;
    for (const type of ["keydown", "keyup"]) {
      const init = {key: "Escape", code: "Escape", keyCode: 27, bubbles: true};
      target.dispatchEvent(new KeyboardEvent(type, init));
    }
    return (await waitFor(() => !q(document, s.menu), ms)) !== null;
  };
  const ensureTemporary = async (s, ms) => {
    if (q(document, s.temporary_on)) return {on: true, key: null, clicked: false};
    let toggle = q(document, s.temporary_chat);
    if (!toggle) {
      const more = q(document, s.more_actions);
      if (!more) return {on: false, key: "more_actions", clicked: false};
      more.click();
      toggle = await waitFor(() => q(document, s.temporary_chat), ms);
      if (!toggle) { await closeMenu(s, ms); return {on: false, key: "temporary_chat", clicked: false}; }
    }
    toggle.click();
    const on = await waitFor(() => q(document, s.temporary_on), ms);
    await closeMenu(s, ms);
    return {on: on !== null, key: on ? null : "temporary_on", clicked: true};
  };
  const matchKeys = (alternatives) => {
    const found = {};
    for (const [key, list] of Object.entries(alternatives)) {
      found[key] = list.findIndex((selector) => q(document, selector) !== null);
    }
    return found;
  };
"""


def _script(signature: str, body: str) -> str:
    return f"{signature} => {{\n{_HELPERS}\n{body}\n}}"


def script(signature: str, body: str) -> str:
    """An evaluated function with the helpers above (`q`, `qa`, `waitFor`, `disabled`, …), for
    the page steps kept in modules of their own."""
    return _script(signature, body)


def popup_guard(selectors: Mapping[str, str], keys: Sequence[str]) -> str:
    """An init script for every document: dismisses each pop-up (cookie bar, preference
    vote, survey) as soon as it appears, whenever that is, so none blocks a request.

    Menus are left alone here: the driver opens one itself.
    """
    wanted = json.dumps({key: selectors[key] for key in keys})
    return f"""
(() => {{
  const buttons = {wanted};
  // In this closure, not on the page's objects: nothing the page's scripts could see.
  const clicked = new WeakSet();
  const sweep = () => {{
    for (const [key, selector] of Object.entries(buttons)) {{
      let button = null;
      try {{ button = document.querySelector(selector); }} catch (e) {{ continue; }}
      if (button && !clicked.has(button)) {{
        clicked.add(button);
        button.click();
      }}
    }}
  }};
  const start = () => {{
    new MutationObserver(sweep).observe(document.documentElement, {{subtree: true, childList: true,
      attributes: true, attributeFilter: ["class"]}});
    sweep();
  }};
  if (document.documentElement) start(); else document.addEventListener("DOMContentLoaded", start);
}})();
"""


# Which alternative of each selector matches now: {key: index, or -1 for none}.
MATCHES: Final = _script("(alternatives)", "  return matchKeys(alternatives);")

# Pop-ups and a menu left open, dismissed now; what was dismissed, and the page's count.
DISMISS: Final = _script(
    "async ([s, keys, ms])",
    """
  const done = dismiss(s, keys);
  if (q(document, s.menu)) { await closeMenu(s, ms); done.push("menu"); }
  return {dismissed: done};
""",
)

# After a load: temporary chat on, and which selectors of the empty chat match.
SETTLE: Final = _script(
    "async ([s, keys, alternatives, ms])",
    """
  dismiss(s, keys);
  const temporary = await ensureTemporary(s, ms);
  const label = q(document, s.model_label);
  return {temporary, matches: matchKeys(alternatives), label: label ? label.textContent.trim() : null};
""",
)

# One request's page work in one round trip: pop-ups away, the model checked, temporary
# chat on, the settings checked then set (opening the advanced group only when a setting
# in it is wanted), then the prompt typed the way typing would (the value, then the events
# the page's framework listens for). Nothing is typed if a check fails.
PREPARE: Final = _script(
    "async ([s, keys, model, targets, advanced, wantStops, text, ms])",
    """
  const result = {dismissed: dismiss(s, keys), label: null, missing: null, unsupported: [],
                  defaults: {}, chips: 0, run_enabled: false, temporary: null, opened: false,
                  turns: qa(document, s.model_turn).length};
  if (q(document, s.menu)) await closeMenu(s, ms);
  const label = q(document, s.model_label);
  if (!label) { result.missing = "model_label"; return result; }
  result.label = label.textContent.trim();
  if (model && result.label.toLowerCase().replace(/^models\\//, "") !== model.toLowerCase()) return result;
  result.temporary = await ensureTemporary(s, ms);
  if (!result.temporary.on) { result.missing = result.temporary.key; return result; }
  const names = Object.keys(targets);
  const needAdvanced = wantStops || names.some((name) => advanced.includes(name));
  if (names.length || wantStops) {
    if (!q(document, s.run_settings)) { result.missing = "run_settings"; return result; }
  }
  if (needAdvanced) {
    const header = q(document, s.advanced_settings);
    if (!header) { result.missing = "advanced_settings"; return result; }
    if (header.getAttribute("aria-expanded") !== "true") {
      header.click();
      result.opened = true;
      const shown = await waitFor(() => header.getAttribute("aria-expanded") === "true"
        && advanced.some((name) => q(document, s[name])), ms);
      if (!shown) { result.missing = "advanced_settings"; return result; }
    }
  }
  const fields = {};
  for (const name of names) {
    const element = q(document, s[name]);
    if (element) fields[name] = element;
    else if (targets[name].strict) result.unsupported.push(name);
  }
  if (wantStops && !q(document, s.add_stop)) result.unsupported.push("stop");
  if (result.unsupported.length) return result;
  const type = (element, value) => {
    const prototype = Object.getPrototypeOf(element);
    Object.getOwnPropertyDescriptor(prototype, "value").set.call(element, value);
    element.dispatchEvent(new Event("input", {bubbles: true}));
    element.dispatchEvent(new Event("change", {bubbles: true}));
    element.dispatchEvent(new Event("blur"));
  };
  for (const [name, element] of Object.entries(fields)) {
    result.defaults[name] = element.value;
    if (element.value !== targets[name].value) type(element, targets[name].value);
  }
  result.chips = qa(document, s.remove_stop).length;
  const prompt = q(document, s.prompt);
  if (!prompt) { result.missing = "prompt"; return result; }
  type(prompt, text);
  prompt.focus();  // so that the submit is a bare key press, not a Playwright focus first
  const run = q(document, s.run_button);
  if (!run) { result.missing = "run_button"; return result; }
  result.run_enabled = !disabled(run);
  return result;
""",
)

# Whether the answer has started: the Stop button shows, or a model turn was added.
STARTED: Final = _script(
    "([s, before])",
    "  return q(document, s.stop_button) !== null || qa(document, s.model_turn).length > before;",
)

# The second try at submitting, atomic in the page: never clicks a Run that is already Stop.
CLICK_RUN: Final = _script(
    "async ([s, keys, before, ms])",
    """
  if (q(document, s.stop_button) !== null || qa(document, s.model_turn).length > before) return "started";
  dismiss(s, keys);
  if (q(document, s.menu)) await closeMenu(s, ms);
  const run = q(document, s.run_button);
  if (!run) return "missing";
  if (disabled(run)) return "disabled";
  run.click();
  return "clicked";
""",
)

# Back to an empty chat: stop a generation left running (or let a finished one settle),
# New chat and Discard unless the chat is empty already (New chat is disabled then),
# temporary chat on again, and the selectors of the empty chat checked. `failed` names
# the step and key that went wrong; the driver then reloads the page instead.
RESET: Final = _script(
    "async ([s, keys, alternatives, stop, ms])",
    """
  const result = {failed: null, key: null, stopped: false, discarded: false, temporary: null, matches: null};
  const fail = (step, key) => { result.failed = step; result.key = key; return result; };
  if (q(document, s.stop_button)) {
    if (stop) {
      const run = q(document, s.run_button);
      if (run) { run.click(); result.stopped = true; }
    }
    if (!(await waitFor(() => !q(document, s.stop_button), ms))) return fail("stop", "stop_button");
  }
  dismiss(s, keys);
  if (q(document, s.menu)) await closeMenu(s, ms);
  const newChat = q(document, s.new_chat);
  if (!newChat) return fail("new_chat", "new_chat");
  if (!disabled(newChat) && (qa(document, s.model_turn).length > 0 || !q(document, s.zero_state))) {
    newChat.click();
    const next = await waitFor(() => q(document, s.confirm_discard) || q(document, s.zero_state), ms);
    if (!next) return fail("discard", "confirm_discard");
    const confirm = q(document, s.confirm_discard);
    if (confirm) confirm.click();
    const empty = await waitFor(() => !q(document, s.confirm_discard) && q(document, s.zero_state)
      && !q(document, s.model_turn), ms);
    if (!empty) return fail("discard", "zero_state");
    result.discarded = true;
  }
  result.temporary = await ensureTemporary(s, ms);
  if (!result.temporary.on) return fail("temporary_chat", result.temporary.key);
  result.matches = matchKeys(alternatives);
  return result;
""",
)

# The rendered answer, as read by the labelled DOM fallback: the last model turn's
# rendered markdown without the thinking and without code blocks' headers and icon
# buttons; whether the page is generating, whether the turn is finished, its error callout
# and any toast. Read afresh at each call: nothing is left in the page between calls.
READ_ANSWER: Final = _script(
    "(s)",
    """
  const BLOCK = /^(P|H[1-6]|LI|TR|PRE|UL|OL|TABLE|BLOCKQUOTE|HR)$/;
  const matches = (el, selector) => { try { return el.matches(selector); } catch (e) { return false; } };
  const textOf = (root) => {
    let out = "";
    const newline = () => { if (out && !out.endsWith("\\n")) out += "\\n"; };
    const walk = (el) => {
      for (const child of el.childNodes) {
        if (child.nodeType === Node.TEXT_NODE) { out += child.data; continue; }
        if (child.nodeType !== Node.ELEMENT_NODE) continue;
        if (matches(child, s.thought)) continue;
        if (matches(child, s.code_block)) {
          const pre = child.querySelector("pre");
          if (pre) { newline(); out += pre.textContent; newline(); }
          continue;
        }
        const block = BLOCK.test(child.tagName);
        if (block) newline();
        if ((child.tagName === "TD" || child.tagName === "TH") && child.previousElementSibling) out += " | ";
        walk(child);
        if (block) newline();
      }
    };
    walk(root);
    return out;
  };
  const turns = qa(document, s.model_turn);
  const turn = turns[turns.length - 1];
  const chat = turn ? (turn.closest("ms-chat-turn") || turn) : null;
  const nodes = turn ? qa(turn, s.turn_text).filter((node) =>
    !node.parentElement.closest(s.turn_text) && !(s.thought && node.closest(s.thought))) : [];
  const text = nodes.map(textOf).join("\\n").trim();
  const generating = q(document, s.stop_button) !== null;
  const finished = chat !== null && q(chat, s.finished) !== null && !generating;
  const callout = chat ? qa(chat, s.error_callout).map((n) => n.textContent.trim()).join("\\n") : "";
  const toast = qa(document, s.toast).map((n) => n.textContent.trim()).join("\\n");
  return {turns: turns.length, text, generating, finished, error: callout, toast};
""",
)
