"""Checks an answer against OpenAI's published schema for its type.

The schemas are OpenAI's own (`tests/support/openai_schemas/schemas.json`, extracted by
its `generate.py`, MIT): an answer that passes here has the shape OpenAI's clients are
built for. `assert_valid("CreateChatCompletionResponse", body)` fails with every
violation spelt out: where in the answer, and what the schema wanted.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).parent / "openai_schemas" / "schemas.json"

# The names the tests use, OpenAI's own.
CHAT_COMPLETION = "CreateChatCompletionResponse"
CHAT_COMPLETION_CHUNK = "CreateChatCompletionStreamResponse"
MODEL = "Model"
MODEL_LIST = "ListModelsResponse"
ERROR = "ErrorResponse"
RESPONSE = "Response"
RESPONSE_STREAM_EVENT = "ResponseStreamEvent"


@functools.cache
def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SCHEMAS.read_text())
    return document


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """A validator for OpenAI's schema `name`, its references resolved within the same file."""
    document = _document()
    if name not in document["components"]["schemas"]:
        raise KeyError(f"no schema {name!r} in {SCHEMAS.name}; add it to generate.py's NAMES")
    schema = {**document, "$ref": f"#/components/schemas/{name}"}
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def violations(name: str, instance: Any) -> list[str]:
    """Each way `instance` breaks schema `name`, as `path: message`; empty when it fits."""
    errors = sorted(validator(name).iter_errors(instance), key=lambda error: list(error.absolute_path))
    return [f"{_path(error.absolute_path)}: {_best(error)}" for error in errors]


def assert_valid(name: str, instance: Any) -> None:
    found = violations(name, instance)
    if found:
        shown = json.dumps(instance, ensure_ascii=False)[:2000]
        raise AssertionError(f"not a valid {name}:\n  " + "\n  ".join(found) + f"\nin: {shown}")


def _path(path: Any) -> str:
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)


def _best(error: Any) -> str:
    # An anyOf that fails says only "is not valid under any of the given schemas": name the
    # deepest reason of its closest branch instead.
    while error.context:
        error = min(error.context, key=lambda sub: (-len(sub.absolute_path), len(sub.context or ())))
    return str(error.message)[:300]
