"""The APIs served beside chat completions on the same pool: `/v1/responses` and `/v1/messages`.

A dialect turns its API's request into a chat-completions request (a `Plan`), which the
edge runs through the chat path (queue, retries before the first byte, cancel, relay);
then the plan re-encodes what the child answers: a whole `chat.completion` into its API's
object, a stream chunk by chunk into its API's events. A dialect also says how its
errors look: the Responses API's are OpenAI's; Anthropic's have their own shape.
The translations themselves are `coordinator.protocol.responses` and `.anthropic`, imported
by the first request of their dialect: most runs serve chat completions only, and the two
add a few hundredths of a second to every start.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from coordinator.protocol import adapting


class Encoder(Protocol):
    """A stream's re-encoding: its opening, the events of each piece, its close."""

    def start(self) -> bytes: ...
    def feed(self, data: bytes) -> bytes: ...
    def close(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Plan:
    chat: bytes  # the chat-completions body sent to the child
    whole: Callable[[dict[str, Any]], dict[str, Any]]  # chat.completion → this API's object
    encoder: Callable[[], Encoder]  # a new stream encoder


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    plan: Callable[[bytes, str, float], Plan]  # body, request id, now; raises wire.InvalidRequest
    # The error body of this API, from the edge's (status, OpenAI error object); None: as it is.
    dress: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None


def _responses_plan(raw: bytes, request_id: str, now: float) -> Plan:
    from coordinator.protocol import responses  # on first use: see the docstring

    translated = responses.translate(raw)
    shape = responses.Shape(request_id, int(now), translated)
    return Plan(
        adapting.chat_bytes(translated.chat),
        lambda completion: responses.response_of(completion, shape),
        lambda: responses.ResponseStream(shape),
    )


def _messages_plan(raw: bytes, request_id: str, now: float) -> Plan:
    from coordinator.protocol import anthropic  # on first use: see the docstring

    translated = anthropic.translate(raw)
    model = translated.model
    return Plan(
        adapting.chat_bytes(translated.chat),
        lambda completion: anthropic.message_of(completion, request_id, model),
        lambda: anthropic.MessageStream(request_id, model),
    )


def _anthropic_error(status: int, error: dict[str, Any]) -> dict[str, Any]:
    from coordinator.protocol import anthropic  # on first use: see the docstring

    inner = error.get("error")
    message = inner.get("message") if isinstance(inner, dict) else None
    param = inner.get("param") if isinstance(inner, dict) else None
    if not isinstance(message, str):
        return anthropic.error_body(status, "The request failed.")
    return anthropic.error_body(
        status, anthropic.error_message(message, param if isinstance(param, str) else None)
    )


RESPONSES = Dialect("responses", _responses_plan)
MESSAGES = Dialect("messages", _messages_plan, _anthropic_error)
# Each dialect's route; a path under the messages route (count_tokens...) answers in its shape too.
BY_PATH = {"/v1/responses": RESPONSES, "/v1/messages": MESSAGES}


def of_path(path: str) -> Dialect | None:
    for prefix, dialect in BY_PATH.items():
        if path == prefix or path.startswith(prefix + "/"):
            return dialect
    return None


def dress_error(path: str, status: int, body: bytes) -> bytes:
    """An OpenAI-shaped error body in the shape of the API of `path` (unchanged for others)."""
    dialect = of_path(path)
    if dialect is None or dialect.dress is None:
        return body
    try:
        error = json.loads(body)
    except ValueError:
        error = {}
    return json.dumps(dialect.dress(status, error if isinstance(error, dict) else {})).encode()


def error_code(body: bytes) -> str | None:
    """The `code` of a child's OpenAI error body, for the log line and metrics."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None
