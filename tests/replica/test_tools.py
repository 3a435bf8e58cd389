"""The replica's tools on the wire: what the page's Tools group sends (declarations at [5],
the response MIME type and schema at [3][7] and [3][8]) and what the endpoint refuses."""

from __future__ import annotations

import json
import secrets
from dataclasses import replace
from typing import Any

import pytest

from child.replica.answer import reply_for
from child.replica.tools import FunctionDeclaration, declaration_problem, schema_problem
from child.replica.wire import GenerateRequest, Turn, WireError, encode_request, parse_request

BASE = GenerateRequest(
    model="m", turns=(Turn("user", "hi"),), system="", stop=(), max_tokens=None, temperature=None,
    top_p=None, nonce=secrets.token_hex(16), temporary=True,
)  # fmt: skip
CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def test_declarations_and_the_response_schema_round_trip_at_their_positions() -> None:
    asked = replace(
        BASE,
        functions=(FunctionDeclaration("get_weather", "weather", CITY), FunctionDeclaration("now")),
        response_mime="application/json",
        response_schema=CITY,
    )
    body = encode_request(asked)
    data = json.loads(body)
    assert data[5] == [["get_weather", "weather", CITY], ["now", None, None]]
    assert data[3][7:9] == ["application/json", CITY] and data[6] is None
    assert parse_request(body) == asked
    plain = json.loads(encode_request(BASE))
    assert plain[5] is None and len(plain[3]) == 7  # nothing of the tools when they are off


def mutated(change: Any) -> bytes:
    data = json.loads(encode_request(BASE))
    change(data)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.__setitem__(5, []),
        lambda d: d.__setitem__(5, [["1st", None, None]]),
        lambda d: d.__setitem__(5, [["f", None, {**CITY, "additionalProperties": False}]]),
        lambda d: d.__setitem__(5, [["f", None, {"type": "string"}]]),
        lambda d: d.__setitem__(6, [1]),
        lambda d: d[3].extend(["text/plain", None]),
        lambda d: d[3].extend([None, CITY]),
        lambda d: d[3].extend(["application/json", {"$ref": "#/x"}]),
    ],
    ids=["empty", "name", "unknown-field", "not-object", "mode", "mime", "schema-alone", "ref"],
)
def test_what_the_page_never_sends_is_refused(change: Any) -> None:
    with pytest.raises(WireError):
        parse_request(mutated(change))


def test_the_pages_schema_rules() -> None:
    assert schema_problem(CITY, "s") is None
    assert schema_problem({"type": ["string", "null"]}, "s") == "s.type is not one of " + (
        "array, boolean, integer, null, number, object, string"
    )
    assert schema_problem({"anyOf": [{"const": 1}]}, "s") == 's.anyOf[0]: unknown field "const"'
    assert schema_problem({"properties": {"a": {"items": {"oneOf": []}}}}, "s") == (
        's.properties.a.items: unknown field "oneOf"'
    )
    assert declaration_problem({"name": "f", "parameters": CITY}, "d") is None
    assert declaration_problem({"name": "f", "strict": True}, "d") == 'd: unknown field "strict"'


def test_a_function_offered_in_the_prompt_is_called_as_the_prompt_asks() -> None:
    schema = '{"type": "object", "properties": {"depth": {"type": "integer"}}}'
    offered = f'[{{"name": "walk_tree", "parameters": {schema}}}]'
    prompt = (
        f"Functions you may call through this prompt (JSON): {offered}\nAnswer so.\n\nplease call walk_tree"
    )
    reply = reply_for(prompt, "replica-flash")
    line = "".join(reply.answer)
    assert line.startswith("<tool_call>") and line.endswith("</tool_call>") and not reply.calls
    assert json.loads(line.removeprefix("<tool_call>").removesuffix("</tool_call>"))["name"] == "walk_tree"
    # Declared on the page, the same function is a call part, not text.
    declared = reply_for(prompt, "replica-flash", functions=[FunctionDeclaration("walk_tree")])
    assert [call.name for call in declared.calls] == ["walk_tree"] and not declared.answer
