"""A deterministic instance of a JSON Schema: what the replica's "model" (and the mock)
answers when asked for JSON of a schema, and the arguments of the calls it makes.

Like a model, it follows the schema's shape (types, required and optional properties,
enums, consts, bounds on numbers, lengths and item counts, `$ref` into `$defs`, the first
branch of `anyOf`/`oneOf`) and, like a model, it does not honour `pattern` or `format`: a
client's strict check after the answer (`child.output_check`) is what catches that.
Strings are `text` (cut or padded to the schema's lengths), so a test can see the prompt
came through.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

# Deep enough for any schema a client sends in practice; a recursive one ends in null.
MAX_DEPTH: Final = 12


def example(schema: Mapping[str, Any] | None, text: str = "replica") -> Any:
    """An instance of `schema` (None or {}: an object with one string)."""
    if not schema:
        return {"answer": text}
    return _example(schema, schema, text, 0)


def _example(schema: Mapping[str, Any], root: Mapping[str, Any], text: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _example(_resolve(ref, root), root, text, depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            # The first branch that is not null: a model answers the substance when it may.
            substance = (b for b in branches if isinstance(b, Mapping) and b.get("type") != "null")
            chosen = next(substance, branches[0])
            return _example(chosen, root, text, depth + 1)
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and all_of:
        merged: dict[str, Any] = {}
        for part in all_of:
            if isinstance(part, Mapping):
                merged = _merge(merged, part)
        rest = {key: value for key, value in schema.items() if key != "allOf"}
        return _example({**merged, **rest}, root, text, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    kind = str(kind).lower()
    if kind == "object":
        if "properties" not in schema:
            return {"answer": text}  # any object: a model still says something
        properties = schema.get("properties") or {}
        return {
            name: _example(sub, root, text, depth + 1)
            for name, sub in properties.items()
            if isinstance(sub, Mapping)
        }
    if kind == "array":
        items = schema.get("items")
        count = max(1, int(schema.get("minItems", 1)))
        maximum = schema.get("maxItems")
        if isinstance(maximum, int):
            count = min(count, maximum)
        item = items if isinstance(items, Mapping) else {}
        return [_example(item, root, text, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        return _number(schema, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, text)


def _number(schema: Mapping[str, Any], *, integer: bool) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value: float = 1 if integer else 0.5
    if isinstance(low, int | float):
        value = max(value, low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0))
    if isinstance(high, int | float):
        value = min(value, high - (1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0))
    return int(value) if integer else value


def _string(schema: Mapping[str, Any], text: str) -> str:
    value = text
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) and len(value) < low:
        value = value + "x" * (low - len(value))
    if isinstance(high, int) and len(value) > high:
        value = value[:high]
    return value


def _resolve(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any]:
    """`#/$defs/Name` (or `#/definitions/Name`) in the root schema; {} if it is not there."""
    node: Any = root
    for piece in ref.removeprefix("#/").split("/") if ref.startswith("#/") else ():
        node = node.get(piece) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def _merge(left: Mapping[str, Any], right: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**left, **right}
    if isinstance(left.get("properties"), Mapping) and isinstance(right.get("properties"), Mapping):
        merged["properties"] = {**left["properties"], **right["properties"]}
    return merged
