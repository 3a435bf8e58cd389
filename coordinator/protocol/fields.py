"""Every field of OpenAI's chat completion request, what this server does with it, and the
values each may take.

Nothing a client sends is silently ignored: each field of OpenAI's
`CreateChatCompletionRequest` is honoured, accepted as the label it is, or refused with a
400 that names it; a field OpenAI does not have is refused too (`unknown_parameter`), as
OpenAI refuses it. A value out of a field's range or of the wrong type is refused with
`invalid_value` before anything else is said of the field, so a client learns first
that its request is malformed, then that it asks for what is not served. `FIELDS` is the
list, checked against OpenAI's own schema by the tests. Pure data and checks: the wire
format (`coordinator.protocol.openai`) raises the errors.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

INVALID_VALUE = "invalid_value"
UNKNOWN_PARAMETER = "unknown_parameter"
UNSUPPORTED_PARAMETER = "unsupported_parameter"
MAX_CHOICES = 128  # OpenAI's own bound on `n`


class Status(enum.StrEnum):
    HONOURED = "honoured"  # acted on
    LABEL = "accepted"  # a label for the caller's own books: accepted, changes no answer
    REFUSED = "refused"  # 400 unsupported_parameter when its value asks for something


# name → what is done with it, and why where it is not honoured. Kept in OpenAI's order.
FIELDS: Mapping[str, tuple[Status, str]] = {
    "messages": (Status.HONOURED, "the conversation, put in the page's prompt"),
    "model": (Status.HONOURED, "the page's model; a model no child offers is 404"),
    "stream": (Status.HONOURED, "SSE, passed through as the page writes"),
    "stream_options": (Status.HONOURED, "include_usage; include_obfuscation: true is refused (no padding)"),
    "temperature": (Status.HONOURED, "the page's run setting"),
    "top_p": (Status.HONOURED, "the page's run setting"),
    "max_tokens": (Status.HONOURED, "the page's output length"),
    "max_completion_tokens": (Status.HONOURED, "the page's output length"),
    "stop": (Status.HONOURED, "the page's stop sequences"),
    "n": (Status.HONOURED, "n choices from n children, in parallel (the coordinator); a child serves one"),
    # These six and web_search_options are typed by coordinator.protocol.request; a page
    # that cannot carry one refuses it by name (the child's 400 unsupported_parameter).
    "tools": (Status.HONOURED, "function tools, to the engine's prompt"),
    "tool_choice": (Status.HONOURED, "none, auto, required or a named function"),
    "parallel_tool_calls": (Status.HONOURED, "to the engine's prompt"),
    "functions": (Status.HONOURED, "the older spelling of tools"),
    "function_call": (Status.HONOURED, "the older spelling of tool_choice"),
    "response_format": (Status.HONOURED, "text, json_object or json_schema"),
    "reasoning_effort": (Status.HONOURED, "the page's thinking level"),
    "web_search_options": (Status.HONOURED, "the page's search tool; a location or context size is refused"),
    "logprobs": (Status.REFUSED, "the site gives no token log probabilities"),
    "top_logprobs": (Status.REFUSED, "the site gives no token log probabilities"),
    "logit_bias": (Status.REFUSED, "the site takes no token biases"),
    "seed": (Status.REFUSED, "the site takes no seed"),
    "presence_penalty": (Status.REFUSED, "the site has no presence penalty"),
    "frequency_penalty": (Status.REFUSED, "the site has no frequency penalty"),
    "audio": (Status.REFUSED, "answers are text only"),
    "modalities": (Status.REFUSED, "answers are text only"),
    "prediction": (Status.REFUSED, "the site takes no predicted output"),
    "service_tier": (Status.REFUSED, "one tier: auto and default pass, others are refused"),
    "verbosity": (Status.REFUSED, "the page has no verbosity setting: medium (the default) passes"),
    "prompt_cache_retention": (Status.REFUSED, "the site's prompt cache cannot be steered"),
    "prompt_cache_options": (Status.REFUSED, "the site's prompt cache cannot be steered"),
    "moderation": (Status.REFUSED, "no moderation is run"),
    "user": (Status.LABEL, "an end-user id, for the caller's books"),
    "safety_identifier": (Status.LABEL, "an end-user id, for the caller's books"),
    "prompt_cache_key": (Status.LABEL, "a cache key: an id, no cache is promised"),
    "metadata": (Status.LABEL, "tags, for the caller's books"),
    "store": (Status.REFUSED, "nothing is kept to fetch later: false passes, true is refused"),
}
# Fields of ours that OpenAI does not have (coordinator.protocol.request reads them).
EXTENSIONS: Mapping[str, tuple[Status, str]] = {
    "url_context": (Status.HONOURED, "the page's URL context tool: the model reads the prompt's URLs"),
}

# Fields refused when their value asks for something (beside the wire format's NOT_HONOURED):
# name → (does this value ask for something?, why it cannot be had).
NOT_OFFERED: Mapping[str, tuple[Callable[[Any], bool], str]] = {
    "service_tier": (lambda v: v not in (None, "auto", "default"), "there is one tier; send auto or default"),
    "verbosity": (lambda v: v not in (None, "medium"), "the page has no verbosity setting"),
    "prompt_cache_retention": (
        lambda v: v not in (None, "in_memory"),
        "the site's prompt cache cannot be set",
    ),
    "prompt_cache_options": (bool, "the site's prompt cache cannot be set"),
    "moderation": (lambda v: v is not None, "no moderation is run here"),
    # OpenAI keeps a stored completion for GET /v1/chat/completions/{id}; nothing here does.
    "store": (lambda v: v is True, "no completion is kept to fetch later; send false or leave it out"),
    "stream_options.include_obfuscation": (
        lambda v: v is True,
        "the stream carries no obfuscation padding; send false or leave it out",
    ),
}
# The fields of stream_options (an object), checked like the body's own.
STREAM_OPTIONS = ("include_usage", "include_obfuscation")


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a request cannot be taken as sent: the field, words for people, a code for programs."""

    param: str
    message: str
    code: str


# -- values ------------------------------------------------------------------------------

Check = Callable[[Any], bool]


def _number(low: float, high: float) -> tuple[Check, str]:
    return (
        lambda v: _is_number(v) and math.isfinite(v) and low <= v <= high,
        f"a number from {low:g} to {high:g}",
    )


def _integer(low: int, high: int) -> tuple[Check, str]:
    return lambda v: _is_integer(v) and low <= v <= high, f"a whole number from {low} to {high}"


def _one_of(*values: str) -> tuple[Check, str]:
    return lambda v: v in values, "one of " + ", ".join(repr(value) for value in values)


def _logit_bias(value: Any) -> bool:
    return isinstance(value, dict) and all(
        key.isascii() and key.isdigit() and _is_integer(bias) and -100 <= bias <= 100
        for key, bias in value.items()
    )


def _metadata(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) <= 16
        and all(len(key) <= 64 and isinstance(tag, str) and len(tag) <= 512 for key, tag in value.items())
    )


_BOOLEAN: tuple[Check, str] = (lambda v: isinstance(v, bool), "true or false")
_STRING: tuple[Check, str] = (lambda v: isinstance(v, str), "a string")
_OBJECT: tuple[Check, str] = (lambda v: isinstance(v, dict), "an object")

# name → (is this value one the field may take?, what it may take); null is always allowed.
VALUES: Mapping[str, tuple[Check, str]] = {
    "n": _integer(1, MAX_CHOICES),
    "presence_penalty": _number(-2, 2),
    "frequency_penalty": _number(-2, 2),
    "top_logprobs": _integer(0, 20),
    "logit_bias": (
        _logit_bias,
        "an object of token ids (as strings of digits) to whole numbers from -100 to 100",
    ),
    "logprobs": _BOOLEAN,
    "seed": _integer(-(2**63), 2**63 - 1),
    "store": _BOOLEAN,
    "parallel_tool_calls": _BOOLEAN,
    "user": _STRING,
    "safety_identifier": (lambda v: isinstance(v, str) and len(v) <= 64, "a string of up to 64 characters"),
    "prompt_cache_key": _STRING,
    "prompt_cache_retention": _one_of("in_memory", "24h"),
    "prompt_cache_options": _OBJECT,
    "metadata": (_metadata, "an object of up to 16 string tags (keys up to 64 characters, values up to 512)"),
    "service_tier": _one_of("auto", "default", "flex", "scale", "priority", "fast"),
    "verbosity": _one_of("low", "medium", "high"),
    "modalities": (
        lambda v: isinstance(v, list) and all(item in ("text", "audio") for item in v),
        "a list of 'text' and 'audio'",
    ),
    "moderation": _OBJECT,
    "audio": _OBJECT,
    "prediction": _OBJECT,
    "web_search_options": _OBJECT,
}


def check_values(body: Mapping[str, Any]) -> Problem | None:
    """The first field of `body` that OpenAI does not have, or whose value is out of its
    range or of the wrong type; None when every field may be read as it is."""
    for name in body:
        if name not in FIELDS and name not in EXTENSIONS:
            return Problem(
                name,
                f"'{name}' is not a field of a chat completion request; remove it "
                "(see https://platform.openai.com/docs/api-reference/chat/create).",
                UNKNOWN_PARAMETER,
            )
    # Most bodies carry none of these fields: only those present are looked at, in VALUES' order.
    if not _VALUE_NAMES.isdisjoint(body):
        for name, (valid, wanted) in VALUES.items():
            value = body.get(name)
            if value is not None and not valid(value):
                return Problem(name, f"'{name}' must be {wanted}, not {_shown(value)}.", INVALID_VALUE)
    options = body.get("stream_options")
    if isinstance(options, dict):  # else the wire format says it must be an object
        for key, value in options.items():
            name = f"stream_options.{key}"
            if key not in STREAM_OPTIONS:
                return Problem(name, f"'{name}' is not a field of stream_options.", UNKNOWN_PARAMETER)
            if value is not None and not isinstance(value, bool):
                return Problem(name, f"'{name}' must be true or false, not {_shown(value)}.", INVALID_VALUE)
    return None


def not_offered(body: Mapping[str, Any]) -> Problem | None:
    """The first field of `body` (of NOT_OFFERED) whose value asks for what is not served."""
    if _NOT_OFFERED_FIELDS.isdisjoint(body):  # the usual body: nothing to look at
        return None
    for name, (asks, why) in NOT_OFFERED.items():
        field, _, key = name.partition(".")
        holder = body.get(field) if key else body
        where = key or field
        if isinstance(holder, Mapping) and where in holder and asks(holder[where]):
            return Problem(name, f"'{name}' is not supported: {why}.", UNSUPPORTED_PARAMETER)
    return None


# The body's fields that `check_values` and `not_offered` read.
_VALUE_NAMES = frozenset(VALUES)
_NOT_OFFERED_FIELDS = frozenset(name.partition(".")[0] for name in NOT_OFFERED)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    """A value as a client would recognise it: a short one itself, a long one by its kind."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return "an array" if isinstance(value, list) else "an object"
