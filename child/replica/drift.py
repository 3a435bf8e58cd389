"""Page drift on demand: the renames the real page makes without notice, one per element.

AI Studio renames elements every few months (the prompt box lost `ms-autosize-textarea`
in January 2026, every `aria-label="Run"` went in February). A driver must notice that
its selector matches nothing and say so rather than hang; the replica's `drift` option
lets a test make exactly that happen to one element. Each key names an element as the
contract (spec section A) does; its renames are applied to the whole page text, markup,
styles and script alike, so the page keeps working under its new names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

# key -> (old, new) pairs, applied in order: a later pair sees the text the earlier left.
DRIFTS: Final[Mapping[str, tuple[tuple[str, str], ...]]] = MappingProxyType(
    {
        "zero_state": (("ms-zero-state", "ms-empty-state"),),
        "prompt": (
            ('aria-label="Enter a prompt"', 'aria-label="Type something"'),
            (' formcontrolname="promptText"', ""),
            ('class="textarea"', 'class="prompt-input"'),
        ),
        "run_button": (("ms-run-button", "ms-send-button"),),
        "model_turn": (("chat-turn-container", "turn-frame"),),
        "turn_text": (("ms-cmark-node", "ms-markdown-block"), ("cmark-node", "markdown-block")),
        "thinking": (("ms-thought-chunk", "ms-thinking-block"),),
        "code_block": (("ms-code-block", "ms-code-snippet"),),
        "finished": (("toggle-edit-button", "edit-turn-button"), ("turn-footer", "turn-feedback")),
        "model_label": (('data-test-id="model-name"', 'data-test-id="model-title"'),),
        "new_chat": (('data-test-clear="outside" aria-label="New chat"', 'aria-label="Start a new chat"'),),
        "more_actions": (('aria-label="View more actions"', 'aria-label="More options"'),),
        "temporary_chat": (
            ("data-test-incognito-toggle", "data-test-temporary-toggle"),
            ("ms-incognito-mode-indicator", "ms-temporary-chat-indicator"),
        ),
        "system_instructions": (('aria-label="System instructions"', 'aria-label="Instructions"'),),
        "advanced_settings": (('aria-label="Advanced settings"', 'aria-label="More settings"'),),
        "temperature": (("temperatureSliderContainer", "temperatureSetting"),),
        "top_p": (("topPSliderContainer", "topPSetting"),),
        "max_tokens": (('aria-label="Maximum output tokens"', 'aria-label="Output length"'),),
        "stop": (('aria-label="Add stop token"', 'aria-label="Add stop sequence"'),),
        "error_callout": (("error-callout", "callout-error"),),
        "add_media": (('data-test-id="add-media-button"', 'data-test-id="insert-media-button"'),),
        "thinking_level": (
            ('aria-label="Thinking Level"', 'aria-label="Thinking budget"'),
            ("ms-thinking-level-setting", "ms-thinking-setting"),
        ),
        "search_tool": (("searchAsAToolTooltip", "googleSearchToolTooltip"),),
        "url_context_tool": (("browseAsAToolTooltip", "urlContextToolTooltip"),),
    }
)


def apply_drift(text: str, keys: Iterable[str]) -> str:
    """`text` with the renames of every key in `keys` (keys the table lacks are an error)."""
    for key in sorted(keys):
        for old, new in DRIFTS[key]:
            text = text.replace(old, new)
    return text
