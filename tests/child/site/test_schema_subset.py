"""A client's JSON Schema brought to the page's subset: rewritten where it can be, the rest
dropped and named, a recursive one refused."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from child.replica.tools import schema_problem
from child.site.schema_subset import Unadaptable, adapt


class Point(BaseModel):
    x: int
    label: str | None = None


class Shape(BaseModel):
    name: str
    points: list[Point]


def test_a_pydantic_strict_schema_reaches_the_page_inlined_and_loosened_by_name() -> None:
    schema = Shape.model_json_schema()
    schema["additionalProperties"] = False
    adapted = adapt(schema)
    assert adapted.dropped == ("additionalProperties",)
    point = adapted.schema["properties"]["points"]["items"]
    assert point["properties"]["x"] == {"title": "X", "type": "integer"}
    # str | None is anyOf [string, null]: the page's anyOf takes it, null being a type it has.
    assert point["properties"]["label"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert schema_problem(adapted.schema, "schema") is None  # the replica's page takes it


@pytest.mark.parametrize(
    ("schema", "page", "dropped"),
    [
        ({"const": "a"}, {"enum": ["a"]}, ()),
        ({"type": ["string", "null"]}, {"type": "string", "nullable": True}, ()),
        ({"type": ["string", "integer"]}, {"anyOf": [{"type": "string"}, {"type": "integer"}]}, ()),
        ({"oneOf": [{"type": "string"}]}, {"anyOf": [{"type": "string"}]}, ("oneOf",)),
        ({"type": "number", "exclusiveMinimum": 0}, {"type": "number", "minimum": 0}, ("exclusiveMinimum",)),
        ({"allOf": [{"properties": {"a": {"type": "string"}}, "required": ["a"]},
                    {"properties": {"b": {"type": "string"}}, "required": ["b"]}]},
         {"properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "required": ["a", "b"]}, ()),
        ({"type": "array", "items": {"type": "string"}, "uniqueItems": True, "$schema": "x"},
         {"type": "array", "items": {"type": "string"}}, ("uniqueItems",)),
    ],
)  # fmt: skip
def test_each_rule_rewritten_or_dropped(
    schema: dict[str, object], page: dict[str, object], dropped: tuple[str, ...]
) -> None:
    adapted = adapt(schema)
    assert adapted.schema == page and adapted.dropped == dropped
    assert schema_problem(adapted.schema, "schema") is None


def test_property_names_are_not_keywords() -> None:
    schema = {"type": "object", "properties": {"const": {"type": "string"}, "$ref": {"type": "integer"}}}
    assert adapt(schema).schema == schema


def test_a_recursive_or_outside_reference_is_unadaptable() -> None:
    tree = {"$defs": {"T": {"type": "object", "properties": {"kids": {"items": {"$ref": "#/$defs/T"}}}}},
            "$ref": "#/$defs/T"}  # fmt: skip
    with pytest.raises(Unadaptable, match="recursive"):
        adapt(tree)
    with pytest.raises(Unadaptable, match="outside the schema"):
        adapt({"$ref": "https://example.com/schema.json"})
