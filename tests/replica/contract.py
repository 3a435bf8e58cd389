"""The selectors of spec-11 section A, as a driver would write them: the page tests check
the replica against these, never against the replica's own internals."""

from __future__ import annotations

from typing import Final

ZERO_STATE: Final = "ms-zero-state"
PROMPT: Final = 'ms-prompt-box textarea.textarea[aria-label="Enter a prompt"][formcontrolname="promptText"]'
RUN: Final = 'ms-run-button button[type="submit"].ms-button-primary'
STOP: Final = f'{RUN}[aria-label="Stop generating"]'
SPINNER: Final = f"{RUN} svg .stoppable-spinner"
MODEL_TURN: Final = "ms-chat-turn .chat-turn-container.model"
USER_TURN: Final = "ms-chat-turn .chat-turn-container.user"
TURN_TEXT: Final = "ms-cmark-node.cmark-node"
CODE_BLOCK: Final = "ms-code-block"
THOUGHT: Final = "ms-thought-chunk"
EDIT_BUTTON: Final = ".actions-container button.toggle-edit-button"
THUMB_UP: Final = '.turn-footer button:has(span:text-is("thumb_up"))'
MODEL_LABEL: Final = '[data-test-id="model-name"]'
NEW_CHAT: Final = 'button[data-test-clear="outside"][aria-label="New chat"]'
DIALOG: Final = ".mat-mdc-dialog-inner-container"
DISCARD: Final = 'button.ms-button-primary:has-text("Discard and continue")'
MORE_ACTIONS: Final = 'button[aria-label="View more actions"]'
MENU: Final = ".mat-mdc-menu-panel"
TEMPORARY: Final = "button[data-test-incognito-toggle]"
INCOGNITO: Final = "ms-incognito-mode-indicator"
SYSTEM_BUTTON: Final = 'button[aria-label="System instructions"]'
SYSTEM_TEXT: Final = 'textarea[aria-label="System instructions"]'
SYSTEM_CLOSE: Final = "button[data-test-close-button]"
SETTINGS: Final = "ms-run-settings"
ADVANCED: Final = 'button[aria-label="Advanced settings"]'
SLIDER_INPUT: Final = 'input.slider-number-input[inputmode="decimal"]'
TEMPERATURE: Final = f'div[data-test-id="temperatureSliderContainer"] {SLIDER_INPUT}[aria-valuemax="2"]'
TOP_P: Final = f'div[data-test-id="topPSliderContainer"] {SLIDER_INPUT}[aria-valuemax="1"]'
MAX_TOKENS: Final = 'input[aria-label="Maximum output tokens"]'
ADD_STOP: Final = 'input[aria-label="Add stop token"]'
STOP_CHIP: Final = "mat-chip"
REMOVE_STOP: Final = 'mat-chip button.remove-button[aria-label*="Remove"]'
CALLOUT: Final = "ms-callout.error-callout .message"
TOAST: Final = "div.toast.error span.content-text"
COOKIE_BAR: Final = "div.glue-cookie-notification-bar.visible"
COOKIE_ACCEPT: Final = "button.glue-cookie-notification-bar__accept"
VOTE_OVERLAY: Final = ".cdk-overlay-container"
SKIP_VOTE: Final = 'button[data-test-id="skip-button"][aria-label="Skip preference vote"]'
SURVEY: Final = "div.hats-survey"
SURVEY_FRAME: Final = 'iframe[id*="google-hats-survey"]'
CLOSE_SURVEY: Final = 'button[aria-label="Close survey"]'

# The answer as a DOM reader gets it: the last model turn's cmark nodes outside thoughts.
LAST_ANSWER_TEXT: Final = """() => {
  const turns = document.querySelectorAll("ms-chat-turn .chat-turn-container.model");
  if (turns.length === 0) return null;
  return [...turns[turns.length - 1].querySelectorAll("ms-cmark-node.cmark-node")]
    .filter((node) => !node.closest("ms-thought-chunk"))
    .map((node) => node.textContent).join("");
}"""
