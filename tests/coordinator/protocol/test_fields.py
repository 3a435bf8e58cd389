"""Every field of OpenAI's chat request has a stated fate here; values out of range are
refused as such (`invalid_value`), before anything else is said of the field."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from coordinator.protocol import fields
from coordinator.protocol.openai import InvalidRequest, parse_chat_request
from tests.support import schemas

HELLO = [{"role": "user", "content": "hi"}]


def _refusal(extra: dict[str, Any], *, fan_out: bool = False) -> InvalidRequest:
    raw = json.dumps({"model": "m", "messages": HELLO, **extra}).encode()
    with pytest.raises(InvalidRequest) as caught:
        parse_chat_request(raw, fan_out=fan_out)
    return caught.value


def _openai_fields() -> set[str]:
    """The properties of OpenAI's CreateChatCompletionRequest, through its allOf."""
    document = schemas._document()["components"]["schemas"]
    found: set[str] = set()
    pending = [document["CreateChatCompletionRequest"]]
    while pending:
        schema = pending.pop()
        found.update(schema.get("properties", {}))
        for part in schema.get("allOf", []):
            pending.append(document[part["$ref"].rsplit("/", 1)[1]] if "$ref" in part else part)
    return found


def test_every_field_of_openais_request_has_a_stated_fate() -> None:
    assert _openai_fields() == set(fields.FIELDS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 0),
        ("n", 129),
        ("n", "2"),
        ("n", 1.5),
        ("presence_penalty", 9),
        ("frequency_penalty", -2.5),
        ("presence_penalty", "high"),
        ("top_logprobs", 21),
        ("top_logprobs", -1),
        ("logit_bias", {"hello": 5}),
        ("logit_bias", {"50256": 101}),
        ("logit_bias", [1, 2]),
        ("logprobs", "yes"),
        ("seed", 1.5),
        ("store", "no"),
        ("user", 7),
        ("safety_identifier", "x" * 65),
        ("metadata", {"k": 1}),
        ("metadata", {f"k{i}": "v" for i in range(17)}),
        ("service_tier", "gold"),
        ("verbosity", "loud"),
        ("modalities", ["video"]),
        ("parallel_tool_calls", "no"),
        ("temperature", 5),
        ("top_p", 1.5),
        ("max_tokens", 0),
        ("stop", 3),
    ],
)
def test_a_value_out_of_range_or_of_the_wrong_type_is_invalid_value(field: str, value: Any) -> None:
    error = _refusal({field: value}, fan_out=True)
    assert (error.status, error.code, error.param) == (400, "invalid_value", field)
    assert f"'{field}' must be" in error.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("presence_penalty", 1.5),
        ("frequency_penalty", -2),
        ("top_logprobs", 20),
        ("logit_bias", {"50256": -100}),
        ("seed", 42),
        ("service_tier", "flex"),
        ("verbosity", "high"),
        ("prompt_cache_retention", "24h"),
        ("prompt_cache_options", {"ttl": "24h"}),
        ("moderation", {"model": "omni-moderation-latest"}),
        ("store", True),
    ],
)
def test_a_value_in_range_that_asks_for_what_is_not_served_is_unsupported(field: str, value: Any) -> None:
    error = _refusal({field: value}, fan_out=True)
    assert (error.status, error.code, error.param) == (400, "unsupported_parameter", field)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("service_tier", "auto"),
        ("service_tier", "default"),
        ("verbosity", "medium"),
        ("parallel_tool_calls", False),
        ("url_context", True),
        ("prompt_cache_retention", "in_memory"),
        ("prompt_cache_key", "k"),
        ("safety_identifier", "u-1"),
        ("store", False),
        ("top_logprobs", 0),
        ("logit_bias", {}),
        ("seed", None),
        ("stream_options", None),
    ],
)
def test_a_value_that_asks_for_nothing_passes(field: str, value: Any) -> None:
    raw = json.dumps({"model": "m", "messages": HELLO, field: value}).encode()
    assert parse_chat_request(raw).body[field] == value


def test_a_field_openai_does_not_have_is_refused_by_name() -> None:
    error = _refusal({"top_k": 40})
    assert (error.status, error.code, error.param) == (400, "unknown_parameter", "top_k")
    error = _refusal({"stream": True, "stream_options": {"include_usage": True, "chunk_size": 3}})
    assert (error.code, error.param) == ("unknown_parameter", "stream_options.chunk_size")


def test_stream_options_are_checked_too() -> None:
    error = _refusal({"stream": True, "stream_options": {"include_usage": "yes"}})
    assert (error.code, error.param) == ("invalid_value", "stream_options.include_usage")
    error = _refusal({"stream": True, "stream_options": {"include_obfuscation": True}})
    assert (error.code, error.param) == ("unsupported_parameter", "stream_options.include_obfuscation")
    raw = json.dumps({"messages": HELLO, "stream": True, "stream_options": {"include_obfuscation": False}})
    assert parse_chat_request(raw.encode()).stream


def test_n_is_the_coordinators_to_fan_out_and_a_childs_to_refuse() -> None:
    raw = json.dumps({"messages": HELLO, "n": 3}).encode()
    assert parse_chat_request(raw, fan_out=True).n == 3
    error = _refusal({"n": 3})
    assert (error.code, error.param) == ("unsupported_parameter", "n")
    assert parse_chat_request(json.dumps({"messages": HELLO, "n": None}).encode()).n == 1


def test_the_readme_table_says_of_every_field_what_the_code_does() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = readme.split("## Chat completions: every field", 1)[1].split("\n## ", 1)[0]
    said: dict[str, str] = {}
    for names, status in re.findall(r"^\| ((?:`[^`]+`(?:, )?)+) \| (\w+) \|", section, re.MULTILINE):
        for name in re.findall(r"`([^`]+)`", names):
            said[name] = status
    done = {name: status.value for name, (status, _) in {**fields.FIELDS, **fields.EXTENSIONS}.items()}
    assert said == done
    assert "ignored" not in section
