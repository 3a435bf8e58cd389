"""A client's JSON Schema brought to what the page's editors take.

AI Studio's function-declaration and structured-output editors take Gemini's Schema, an
OpenAPI subset (`PAGE_FIELDS`): no `$ref`, no `const`, no `additionalProperties`, one
type per schema. Clients send full JSON Schema (Pydantic's strict schemas always carry
`additionalProperties: false`, `title`s and `$defs`). So before a schema goes to the page:

- what has an equal in the subset is rewritten: `$ref` inlined from `$defs`, `const` as a
  one-value `enum`, a type list with "null" as `nullable`, `allOf` merged;
- what the subset cannot say is left out and named in `dropped` (`additionalProperties`,
  `oneOf` taken as `anyOf`, exclusive bounds taken as inclusive, `pattern`-like rules the
  editor lacks): the page's schema is then looser than the client's, so the caller says so
  (log, header) and the answer is checked against the client's own schema afterwards
  (`child.output_check`);
- a recursive `$ref` cannot be inlined: `Unadaptable`, a 400 that names it.

Pure: no I/O. Keys are never logged with their values, only keyword names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

# The page's schema fields (Gemini's Schema), as its editors accept them.
PAGE_FIELDS: Final = frozenset(
    {
        "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
        "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
        "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum",
    }
)  # fmt: skip
PAGE_TYPES: Final = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
# Annotations with no say in what matches: left out without a word.
SILENT: Final = frozenset({"$schema", "$id", "$comment", "$defs", "definitions", "examples", "deprecated"})


class Unadaptable(ValueError):
    """A schema the page's subset cannot hold even loosely; the message says where."""


@dataclass(frozen=True, slots=True)
class Adapted:
    """The schema as the page takes it, and the keywords it lost on the way (sorted)."""

    schema: dict[str, Any]
    dropped: tuple[str, ...] = ()


def adapt(schema: Mapping[str, Any]) -> Adapted:
    """`schema` in the page's subset; raises Unadaptable for a recursive `$ref`."""
    dropped: set[str] = set()
    adapted = _node(schema, schema, dropped, (), "$")
    return Adapted(adapted, tuple(sorted(dropped)))


def _node(
    schema: Mapping[str, Any], root: Mapping[str, Any], dropped: set[str], refs: tuple[str, ...], where: str
) -> dict[str, Any]:
    if not isinstance(schema, Mapping):
        raise Unadaptable(f"{where} is not a schema object")
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if ref in refs:
            raise Unadaptable(f"{where} refers to {ref} inside itself (a recursive schema)")
        target = _resolve(ref, root, where)
        rest = {key: value for key, value in schema.items() if key != "$ref"}
        return _node({**target, **rest}, root, dropped, (*refs, ref), where)
    all_of = schema.get("allOf")
    if isinstance(all_of, list):
        merged: dict[str, Any] = {}
        for index, part in enumerate(all_of):
            merged = _merge(merged, _node(part, root, dropped, refs, f"{where}.allOf[{index}]"))
        rest = {key: value for key, value in schema.items() if key != "allOf"}
        return _merge(merged, _node(rest, root, dropped, refs, where))
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in SILENT:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "type":
            out.update(_type(value, dropped))
        elif key == "properties" and isinstance(value, Mapping):
            out["properties"] = {
                name: _node(sub, root, dropped, refs, f"{where}.properties.{name}")
                for name, sub in value.items()
            }
        elif key == "items" and isinstance(value, Mapping):
            out["items"] = _node(value, root, dropped, refs, f"{where}.items")
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            if key == "oneOf":
                dropped.add("oneOf")
            out["anyOf"] = [
                _node(sub, root, dropped, refs, f"{where}.{key}[{index}]") for index, sub in enumerate(value)
            ]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, int | float):
            dropped.add(key)
            out.setdefault("minimum" if key == "exclusiveMinimum" else "maximum", value)
        elif key in PAGE_FIELDS and key not in ("properties", "items", "anyOf"):
            out[key] = value
        else:
            dropped.add(key)
    return out


def _type(value: Any, dropped: set[str]) -> dict[str, Any]:
    kinds = value if isinstance(value, list) else [value]
    known = [kind for kind in kinds if isinstance(kind, str) and kind.lower() in PAGE_TYPES]
    if len(known) != len(kinds) or not known:
        dropped.add("type")
        return {}
    nullable = "null" in known and len(known) > 1
    rest = [kind for kind in known if kind != "null"] if nullable else known
    if len(rest) == 1:
        return {"type": rest[0], **({"nullable": True} if nullable else {})}
    return {"anyOf": [{"type": kind} for kind in rest], **({"nullable": True} if nullable else {})}


def _resolve(ref: str, root: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    if not ref.startswith("#/"):
        raise Unadaptable(f"{where} refers to {ref}, outside the schema")
    node: Any = root
    for piece in ref[2:].split("/"):
        node = node.get(piece) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping):
        raise Unadaptable(f"{where} refers to {ref}, which is not in the schema")
    return node


def _merge(left: Mapping[str, Any], right: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**left, **right}
    if "properties" in left and "properties" in right:
        merged["properties"] = {**left["properties"], **right["properties"]}
    if "required" in left and "required" in right:
        merged["required"] = list(dict.fromkeys([*left["required"], *right["required"]]))
    return merged
