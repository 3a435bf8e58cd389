"""The deterministic instance of a schema: the replica's and the mock's JSON answers."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from child.schema_example import example


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer", "minimum": 5}}},
        {"type": "array", "items": {"type": "number", "maximum": 0.1}, "minItems": 3},
        {"type": "object", "properties": {"s": {"type": "string", "minLength": 20, "maxLength": 25}}},
        {"enum": ["x", "y"]},
        {"const": 7},
        {"type": ["null", "boolean"]},
        {"anyOf": [{"type": "null"}, {"type": "integer", "exclusiveMinimum": 3}]},
        {"allOf": [{"properties": {"a": {"type": "integer"}}}, {"properties": {"b": {"type": "boolean"}}}]},
        {
            "$defs": {"Point": {"properties": {"x": {"type": "integer"}}, "required": ["x"]}},
            "type": "object",
            "properties": {"p": {"$ref": "#/$defs/Point"}},
            "required": ["p"],
            "additionalProperties": False,
        },
    ],
)
def test_the_example_matches_its_schema(schema: dict[str, Any]) -> None:
    jsonschema.validate(example(schema, "text"), schema)


def test_strings_carry_the_text_and_an_open_object_says_something() -> None:
    assert example({"type": "object", "properties": {"q": {"type": "string"}}}, "hello") == {"q": "hello"}
    assert example({"type": "object"}, "hello") == {"answer": "hello"}
    assert example(None, "hello") == {"answer": "hello"}


def test_like_a_model_it_does_not_honour_pattern_and_a_recursive_schema_ends() -> None:
    with pytest.raises(jsonschema.ValidationError):
        schema = {"type": "string", "pattern": "^[0-9]+$"}
        jsonschema.validate(example(schema, "abc"), schema)
    kids = {"type": "array", "items": {"$ref": "#/$defs/T"}}
    tree = {"$defs": {"T": {"type": "object", "properties": {"kids": kids}}}, "$ref": "#/$defs/T"}
    assert isinstance(example(tree), dict)
