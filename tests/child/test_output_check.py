"""The answer held to what the request asked: JSON, its schema, strict function arguments."""

from __future__ import annotations

import pytest

from child.output_check import InvalidOutput, InvalidSchema, OutputCheck, first_violation
from coordinator.protocol.link import TextDelta, ToolCall
from coordinator.protocol.request import ChatOptions, FunctionTool, OutputFormat, OutputKind
from tests.support.imports import heavy, imported_by

SCHEMA = {
    "type": "object",
    "properties": {"n": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["n"],
    "additionalProperties": False,
}


def checked(options: ChatOptions, *pieces: str) -> None:
    check = OutputCheck(options)
    for piece in pieces:
        check.feed(TextDelta(piece))
    check.finish()


def schema_options(strict: bool = True) -> ChatOptions:
    return ChatOptions(output=OutputFormat(OutputKind.JSON_SCHEMA, "Counts", SCHEMA, strict))


def test_text_is_never_checked() -> None:
    checked(ChatOptions(), "anything at all")
    assert not OutputCheck(ChatOptions()).active


def test_json_matching_the_schema_passes_whatever_its_pieces() -> None:
    checked(schema_options(), '{"n": ', "3, ", '"tags": ["a"]}')


@pytest.mark.parametrize(
    ("pieces", "said"),
    [
        (("Sure! Here it is",), "is not JSON (16 characters); the JSON schema 'Counts' was asked for"),
        (('{"n": "3"}',), "does not match the JSON schema 'Counts': at .n: fails 'type'"),
        (('{"n": 3, "tags": [1]}',), "at .tags[0]: fails 'type'"),
        (('{"n": 3, "extra": true}',), "at (root): fails 'additionalProperties'"),
        (('```json\n{"n": 3}\n```',), "is not JSON"),
    ],
)
def test_a_mismatch_is_invalid_output_naming_the_schema_and_where(pieces: tuple[str, ...], said: str) -> None:
    with pytest.raises(InvalidOutput) as failed:
        checked(schema_options(), *pieces)
    assert failed.value.status == 502 and failed.value.code == "invalid_output"
    assert said in failed.value.message
    assert "Sure!" not in failed.value.message and '"3"' not in failed.value.message  # never the answer


def test_json_object_wants_an_object() -> None:
    options = ChatOptions(output=OutputFormat(OutputKind.JSON_OBJECT))
    checked(options, '{"any": 1}')
    with pytest.raises(InvalidOutput, match="not an object"):
        checked(options, "[1, 2]")


def test_an_answer_that_calls_a_function_is_not_held_to_the_json_format() -> None:
    check = OutputCheck(schema_options())
    check.feed(ToolCall("call_1", "f", "{}"))
    check.finish()


def test_a_strict_functions_arguments_must_match_its_parameters() -> None:
    tools = (FunctionTool("f", parameters=SCHEMA, strict=True), FunctionTool("loose", parameters=SCHEMA))
    check = OutputCheck(ChatOptions(tools=tools))
    check.feed(ToolCall("call_1", "f", '{"n": 1}'))
    check.feed(ToolCall("call_2", "loose", '{"n": "x"}'))  # not strict: the client's to check
    with pytest.raises(InvalidOutput, match=r"called f with arguments that break its parameters: at \.n"):
        check.feed(ToolCall("call_3", "f", '{"n": "x"}'))


def test_a_schema_that_is_no_json_schema_is_a_400_before_anything_is_asked() -> None:
    bad = {"type": "object", "properties": {"n": {"type": "no-such-type"}}}
    with pytest.raises(InvalidSchema) as refused:
        OutputCheck(ChatOptions(output=OutputFormat(OutputKind.JSON_SCHEMA, "Bad", bad)))
    assert refused.value.status == 400 and refused.value.param == "response_format.json_schema.schema"
    assert "at .properties.n.type" in refused.value.message
    with pytest.raises(InvalidSchema) as refused:
        OutputCheck(ChatOptions(tools=(FunctionTool("f", parameters=bad, strict=True),)))
    assert refused.value.param == "tools[0].function.parameters"
    assert first_violation(1, {"type": "integer"}) is None


def test_a_child_starts_without_jsonschema_rich_or_the_browser() -> None:
    """Start-up time: jsonschema comes with the first request that needs a check; rich never
    (structlog's is hidden); Playwright and cryptography only with a browser engine."""
    modules = imported_by(["-m", "child", "--help"])
    assert "child.http.server" in modules and "child.output_check" in modules
    assert heavy(modules, "jsonschema", "rich", "playwright", "cryptography") == set()
