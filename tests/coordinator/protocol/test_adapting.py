"""Whatever body arrives, an adapter answers with a translation or an InvalidRequest: never
another exception, which the edge would have to answer with a 500."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator.protocol import anthropic, responses
from coordinator.protocol.adapting import chat_bytes
from coordinator.protocol.errors import InvalidRequest

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
KEYS = st.sampled_from(
    ["type", "role", "content", "text", "input", "model", "messages", "max_tokens", "tools", "tool_choice",
     "name", "call_id", "output", "arguments", "source", "tool_use_id", "thinking", "summary", "format",
     "reasoning", "effort", "budget_tokens", "image_url", "input_schema", "system", "stream", "metadata"]
)  # fmt: skip
WORDS = st.sampled_from(
    ["user", "assistant", "message", "text", "input_text", "function_call", "tool_use", "tool_result",
     "image", "enabled", "base64", "function", "json_schema"]
)  # fmt: skip
VALUES = st.recursive(
    SCALARS | WORDS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=30,
)
PNG = {"type": "base64", "media_type": "image/png", "data": "AA"}
# Valid requests of each API, of which the test below spoils one place at a time.
VALID: dict[Callable[[bytes], Any], dict[str, Any]] = {
    responses.translate: {
        "model": "m",
        "instructions": "be brief",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "hi"},
                                         {"type": "input_image", "image_url": "data:image/png;base64,AA"}]},
            {"type": "reasoning", "id": "rs", "summary": [{"type": "summary_text", "text": "t"}]},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": [{"type": "input_text", "text": "o"}]},
        ],
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "tool_choice": {"type": "function", "name": "f"},
        "reasoning": {"effort": "low", "summary": "auto"},
        "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}},
        "max_output_tokens": 10,
        "metadata": {"k": "v"},
        "include": ["reasoning.encrypted_content"],
    },
    anthropic.translate: {
        "model": "m",
        "max_tokens": 5000,
        "system": [{"type": "text", "text": "be brief"}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image", "source": PNG}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": ""},
                                              {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                          "content": [{"type": "text", "text": "o"}]}]},
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "f"},
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
        "metadata": {"user_id": "u"},
    },
}  # fmt: skip


def _places(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) of a JSON value, depth first."""
    found: list[tuple[Any, Any]] = []
    pending = [value]
    while pending:
        container = pending.pop()
        keys = container.keys() if isinstance(container, dict) else range(len(container))
        for key in keys:
            found.append((container, key))
            if isinstance(container[key], (dict, list)):
                pending.append(container[key])
    return found


TRANSLATIONS: list[Callable[[bytes], Any]] = [responses.translate, anthropic.translate]


@pytest.mark.parametrize("translate", TRANSLATIONS)
@given(body=st.dictionaries(KEYS, VALUES, max_size=8))
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_body_is_translated_or_refused(translate: Callable[[bytes], Any], body: dict[str, Any]) -> None:
    try:
        translated = translate(json.dumps(body).encode())
    except InvalidRequest as exc:
        assert exc.status == 400 and exc.message
        return
    chat_bytes(translated.chat)


@pytest.mark.parametrize("translate", TRANSLATIONS)
@given(data=st.data())
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
def test_a_valid_body_spoilt_in_one_place_is_translated_or_refused(
    translate: Callable[[bytes], Any], data: st.DataObject
) -> None:
    body = json.loads(json.dumps(VALID[translate]))
    translate(json.dumps(body).encode())  # valid as it is
    container, key = data.draw(st.sampled_from(_places(body)))
    container[key] = data.draw(VALUES)
    try:
        translated = translate(json.dumps(body).encode())
    except InvalidRequest as exc:
        assert exc.status == 400 and exc.message
        return
    chat_bytes(translated.chat)


def test_a_lone_surrogate_is_the_clients_error() -> None:
    with pytest.raises(InvalidRequest):
        chat_bytes({"messages": [{"role": "user", "content": "\ud800"}]})


@pytest.mark.parametrize("translate", TRANSLATIONS)
def test_deep_nesting_is_refused_not_a_crash(translate: Callable[[bytes], Any]) -> None:
    with pytest.raises(InvalidRequest):
        translate(b"[" * 100_000)
