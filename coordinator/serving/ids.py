"""Request ids: a client's own `X-Request-ID` if it is safe to use, else a new unguessable one.

An id names a request to `POST /v1/cancel/{id}`, so a generated one must not be
predictable from another (a counter would let one client cancel the next client's
request). A client's id travels into the child's request line and into the completion
id (`chatcmpl-<id>`), so only characters that need no escaping anywhere are accepted.
"""

from __future__ import annotations

import re
import secrets

MAX_LENGTH = 128
ALLOWED = "A-Z a-z 0-9 - _ . :"
INVALID = (
    f"The X-Request-ID header must be 1 to {MAX_LENGTH} characters of {ALLOWED}; "
    "send such an id, or none to get a generated one."
)
_SAFE = re.compile(rf"[A-Za-z0-9_.:\-]{{1,{MAX_LENGTH}}}")
# 96 random bits from the OS: no two requests share one, and none can be guessed from another.
_RANDOM_BYTES = 12


def new_request_id() -> str:
    return f"req_{secrets.token_hex(_RANDOM_BYTES)}"


def request_id(headers: dict[str, str]) -> str | None:
    """The client's X-Request-ID, a new id if it sent none, or None if its id is unusable."""
    given = headers.get("x-request-id", "").strip()
    if not given:
        return new_request_id()
    return given if _SAFE.fullmatch(given) else None
