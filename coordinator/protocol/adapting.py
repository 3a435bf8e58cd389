"""What the two adapters (`responses`, `anthropic`) share when they read a request.

Each adapter reads its API's request and writes a chat-completions body; a field it
cannot honour is refused with 400 naming it, never dropped. These are the checks both
make, raising `InvalidRequest` (the edge dresses it in the route's own error shape).
Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from coordinator.protocol.errors import InvalidRequest

# Bounds on what one request may hold, beyond the body's byte limit: counts that a
# translation walks (Anthropic's own limit on messages is 100,000).
MAX_ITEMS = 100_000
MAX_TOOLS = 128  # what a chat request takes (coordinator.protocol.request)
MAX_METADATA = 16


def load_object(raw: bytes, what: str) -> dict[str, Any]:
    """The body as a JSON object, or InvalidRequest saying why not."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidRequest(f"The request body is not UTF-8. Send {what}.", code="invalid_json") from None
    except ValueError as exc:
        raise InvalidRequest(
            f"The request body is not valid JSON ({exc}). Send {what}.", code="invalid_json"
        ) from None
    except RecursionError:
        raise InvalidRequest("The request body is nested too deeply.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object: {what}.", code="invalid_json")
    return body


def refuse(param: str, why: str) -> InvalidRequest:
    """A field (or value) that asks for something nothing here can give."""
    return InvalidRequest(f"'{param}' is not supported: {why}.", param=param, code="unsupported_parameter")


def unknown(param: str, known: Mapping[str, object] | frozenset[str]) -> InvalidRequest:
    names = ", ".join(sorted(known))
    return InvalidRequest(
        f"Unknown parameter '{param}'; this route reads: {names}.", param=param, code="unknown_parameter"
    )


def invalid(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"'{param}' {message}", param=param)


def string(value: object, param: str, *, empty: bool = True) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise invalid(param, "must be a non-empty string." if not empty else "must be a string.")
    return value


def obj(value: object, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(param, "must be an object.")
    return value


def array(value: object, param: str, limit: int = MAX_ITEMS) -> list[Any]:
    if not isinstance(value, list):
        raise invalid(param, "must be an array.")
    if len(value) > limit:
        raise invalid(param, f"holds {len(value)} items; at most {limit} are taken.")
    return value


def number(value: object, param: str, low: float, high: float) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise invalid(param, f"must be a number from {low:g} to {high:g}.")
    return value


def whole(value: object, param: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise invalid(param, f"must be a whole number of at least {low}.")
    return value


def boolean(value: object, param: str) -> bool:
    if not isinstance(value, bool):
        raise invalid(param, "must be true or false.")
    return value


def labels(value: object, param: str) -> dict[str, str]:
    """`metadata`: up to 16 string labels, which are echoed and honour nothing else."""
    found = obj(value, param)
    if len(found) > MAX_METADATA or not all(isinstance(v, str) for v in found.values()):
        raise invalid(param, f"must hold at most {MAX_METADATA} string values.")
    return found


def only_keys(value: dict[str, Any], allowed: frozenset[str], param: str) -> None:
    """Refuse a key this translation does not read, so none is dropped unseen."""
    for key in value:
        if key not in allowed:
            raise unknown(f"{param}.{key}", allowed)


def chat_bytes(body: dict[str, Any]) -> bytes:
    """The chat-completions body as the child takes it. A lone surrogate cannot be encoded:
    it is the client's error, not a 500."""
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(
            "The request has a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not a "
            "character; send valid Unicode."
        ) from None
