"""The JavaScript the driver runs inside the page, each a function Playwright evaluates.

Kept apart from the request flow: these are read, tested and fixed as page code.
"""

from __future__ import annotations

from typing import Final

# Installed in every document: reports the last model turn's text, whether the page is
# generating, and any toast, each time the DOM changes (and only when they changed).
OBSERVER: Final = """
(selectors) => {
  if (window.__coordinatorObserver) return;
  const topLevel = (turn) => Array.from(turn.querySelectorAll(selectors.turn_text))
    .filter((node) => !node.parentElement.closest(selectors.turn_text));
  let last = null;
  const report = () => {
    const turns = document.querySelectorAll(selectors.model_turn);
    const turn = turns[turns.length - 1];
    const text = turn ? topLevel(turn).map((node) => node.textContent).join("") : "";
    const generating = document.querySelector(selectors.spinner) !== null;
    const toast = Array.from(document.querySelectorAll(selectors.toast))
      .map((node) => node.textContent.trim()).join("\\n");
    const state = JSON.stringify([turns.length, text, generating, toast]);
    if (state === last) return;
    last = state;
    window.__coordinatorReport({turns: turns.length, text, generating, toast});
  };
  window.__coordinatorObserver = new MutationObserver(report);
  window.__coordinatorObserver.observe(document.documentElement,
    {subtree: true, childList: true, characterData: true, attributes: true});
  report();
}
"""


# Sets the run settings and the prompt the way typing would (the value, then the events
# that the page's framework listens for), and reports what it found.
PREPARE: Final = """
([selectors, wanted, defaults, text]) => {
  const result = {defaults: {}, chips: 0, missing: [], run_enabled: false};
  const type = (element, value) => {
    const prototype = Object.getPrototypeOf(element);
    Object.getOwnPropertyDescriptor(prototype, "value").set.call(element, value);
    element.dispatchEvent(new Event("input", {bubbles: true}));
    element.dispatchEvent(new Event("change", {bubbles: true}));
    element.dispatchEvent(new Event("blur"));
  };
  for (const name of ["temperature", "top_p", "max_tokens"]) {
    const element = document.querySelector(selectors[name]);
    if (!element) { result.missing.push(name); continue; }
    result.defaults[name] = element.value;
    const target = wanted[name] ?? defaults[name] ?? element.value;
    if (element.value !== target) type(element, target);
  }
  result.chips = document.querySelectorAll(selectors.remove_stop).length;
  const prompt = document.querySelector(selectors.prompt);
  if (prompt) type(prompt, text); else result.missing.push("prompt");
  const run = document.querySelector(selectors.run_button);
  result.run_enabled = run !== null && !run.disabled;
  return result;
}
"""


# Chooses the model the way the page remembers a user's choice: its stored preference.
SET_MODEL: Final = """
([key, model]) => {
  const preference = JSON.parse(localStorage.getItem(key) || "{}");
  preference.promptModel = model;
  localStorage.setItem(key, JSON.stringify(preference));
}
"""

# The model the page's stored preference names, or null.
CURRENT_MODEL: Final = """
(key) => {
  try { return JSON.parse(localStorage.getItem(key) || "{}").promptModel || null; }
  catch (e) { return null; }
}
"""
