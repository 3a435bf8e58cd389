"""The answer checked against what the client asked of it, for every engine: JSON when
`response_format` asks for JSON, matching the schema when it gives one, and a strict
function's arguments matching its parameters.

A model can break a schema whatever the page was told (and the page may have been told a
looser schema than the client's, see `child.site.schema_subset`), so the check is the
child's, after the answer: the session feeds it every event and asks it at the finish.
A mismatch is `InvalidOutput` (502 `invalid_output`, naming the schema and the first
violation), never prose passed off as JSON. Messages name where the answer is wrong,
never the answer's or the schema's content.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import structlog

from child.engines.base import EngineError
from coordinator.protocol.link import INVALID_OUTPUT, AnswerEvent, TextDelta, ToolCall
from coordinator.protocol.request import ChatOptions, OutputKind

log = structlog.get_logger("child.output_check")


class InvalidOutput(EngineError):
    """The model's answer does not match what the client asked for."""

    status = 502
    code = INVALID_OUTPUT


class InvalidSchema(EngineError):
    """The request's schema is no JSON Schema: nothing could be checked against it."""

    status = 400
    code = "invalid_schema"

    def __init__(self, param: str, why: str) -> None:
        super().__init__(f"'{param}' is not a valid JSON Schema: {why}.")
        self.param = param


def schema_problem(schema: Mapping[str, Any]) -> str | None:
    """Why `schema` is no valid JSON Schema (the rule it breaks), or None."""
    # Here, not at the top: jsonschema takes ~0.2 s to import, and only requests with a
    # schema or strict tools need it, not every child's start.
    import jsonschema
    from jsonschema.exceptions import SchemaError

    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        validator_class.check_schema(schema)
    except SchemaError as exc:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.absolute_path) or "(root)"
        return f"at {where}: fails '{exc.validator}'"
    return None


def first_violation(instance: Any, schema: Mapping[str, Any]) -> str | None:
    """Where `instance` first breaks `schema` (a valid one) and which rule (None if it
    matches): the path and the keyword, never the values."""
    import jsonschema  # see schema_problem
    from jsonschema.exceptions import UnknownType, best_match

    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        # The most telling one, as jsonschema ranks them (the shallowest, the least ambiguous).
        error = best_match(validator_class(schema).iter_errors(instance))
    except UnknownType as exc:
        return f"the schema names an unknown type ({exc.type})"
    if error is None:
        return None
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path) or "(root)"
    return f"at {path}: fails '{error.validator}'"


class OutputCheck:
    """Fed every event of one answer; `finish()` raises InvalidOutput if it does not match."""

    def __init__(self, options: ChatOptions) -> None:
        """Raises InvalidSchema (400, naming the field) for a schema that is no JSON Schema."""
        self.output = options.output
        self.strict_tools = {tool.name: tool for tool in options.tools if tool.strict}
        if self.output.schema is not None and (why := schema_problem(self.output.schema)):
            raise InvalidSchema("response_format.json_schema.schema", why)
        for index, tool in enumerate(options.tools):
            if tool.strict and tool.parameters and (why := schema_problem(tool.parameters)):
                raise InvalidSchema(f"tools[{index}].function.parameters", why)
        self._text: list[str] = []
        self._called = False

    @property
    def active(self) -> bool:
        return self.output.kind is not OutputKind.TEXT or bool(self.strict_tools)

    def feed(self, event: AnswerEvent) -> None:
        if isinstance(event, TextDelta):
            self._text.append(event.text)
        elif isinstance(event, ToolCall):
            self._called = True
            self._check_call(event)

    def finish(self) -> None:
        """Raise InvalidOutput unless the whole answer is what was asked for. An answer that
        calls a function is a call, not the JSON answer, so only the call is checked."""
        if self.output.kind is OutputKind.TEXT or self._called:
            return
        text = "".join(self._text)
        what = (
            f"the JSON schema {self.output.name!r}"
            if self.output.kind is OutputKind.JSON_SCHEMA
            else "a JSON object (response_format json_object)"
        )
        try:
            value = json.loads(text)
        except ValueError:
            self._fail(f"the model's answer is not JSON ({len(text)} characters); {what} was asked for")
        if self.output.kind is OutputKind.JSON_OBJECT:
            if not isinstance(value, dict):
                self._fail(f"the model's answer is JSON but not an object; {what} was asked for")
            return
        assert self.output.schema is not None
        violation = first_violation(value, self.output.schema)
        if violation is not None:
            self._fail(f"the model's answer does not match {what}: {violation}")

    def _check_call(self, call: ToolCall) -> None:
        tool = self.strict_tools.get(call.name)
        if tool is None:
            return
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            self._fail(f"the model called {call.name} with arguments that are not JSON")
        violation = first_violation(arguments, tool.parameters or {"type": "object"})
        if violation is not None:
            self._fail(f"the model called {call.name} with arguments that break its parameters: {violation}")

    def _fail(self, message: str) -> None:
        log.warning("invalid_output", reason=message)
        raise InvalidOutput(message)
