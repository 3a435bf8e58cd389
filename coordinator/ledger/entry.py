"""One request as the ledger keeps it: what the edge knew when it ended, and its token counts.

The edge builds an `Entry` in a few attribute reads and hands it over; everything that
costs more (finding the usage in the answer's last bytes) happens on the writer's thread.
No prompt or answer text is kept: `tail` is only read for its `usage` object and dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import NamedTuple

# The answer's last bytes that are searched for its usage (a stream's usage chunk, or the
# end of a completion); usage is the last field the children write.
TAIL_BYTES = 4096
_USAGE_KEY = b'"usage":'
_DONE = b"data: [DONE]"
_DECODER = json.JSONDecoder()


class Tokens(NamedTuple):
    prompt: int | None = None
    completion: int | None = None
    reasoning: int | None = None


NO_TOKENS = Tokens()


# Not frozen: every chat request makes one on the event loop, and a frozen dataclass
# takes several times as long to build (docs/benchmarks.md). Nothing changes an entry.
@dataclass(slots=True)
class Entry:
    """A finished request. Times are seconds; `at` is the wall clock at its arrival."""

    at: float
    request_id: str
    route: str
    profile: str | None
    model: str | None
    status: int
    error_code: str | None
    stream: bool
    ttft: float | None
    duration: float
    key: str | None  # the key's label (client-0, admin-1), never the key
    # The answer's end (OpenAI's chat shape), read for usage only; b"" when there was none.
    tail: bytes = b""


# The ledger's columns, in the order `row()` gives them.
COLUMNS = (
    "ts", "request_id", "route", "profile", "model", "status", "error_code", "stream",
    "prompt_tokens", "completion_tokens", "reasoning_tokens", "ttft_ms", "duration_ms", "key",
)  # fmt: skip


def row(entry: Entry) -> tuple[object, ...]:
    """The entry as the values of `COLUMNS`."""
    tokens = usage_in(entry.tail) if entry.status < 400 else NO_TOKENS
    error_code = entry.error_code
    if entry.stream and entry.status == 200 and error_code is None and entry.tail and _DONE not in entry.tail:
        # A stream that started and then broke ends without [DONE]: an error the status hides.
        error_code = "stream_incomplete"
    return (
        entry.at, entry.request_id, entry.route, entry.profile, entry.model, entry.status, error_code,
        int(entry.stream), tokens.prompt, tokens.completion, tokens.reasoning,
        None if entry.ttft is None else round(entry.ttft * 1000, 3), round(entry.duration * 1000, 3),
        entry.key,
    )  # fmt: skip


def usage_in(tail: bytes) -> Tokens:
    """The last OpenAI `usage` object in `tail`, or no counts.

    Found by its key rather than by parsing the whole answer: a `"usage":` with a bare
    quote cannot occur inside a JSON string (quotes there are escaped), so each hit is a key.
    """
    end = len(tail)
    while (at := tail.rfind(_USAGE_KEY, 0, end)) >= 0:
        end = at
        try:
            usage, _ = _DECODER.raw_decode(tail[at + len(_USAGE_KEY) :].decode("utf-8", "replace").lstrip())
        except ValueError:
            continue
        if isinstance(usage, dict):
            details = usage.get("completion_tokens_details")
            reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
            return Tokens(_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")),
                          _count(reasoning))  # fmt: skip
    return NO_TOKENS


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


@dataclass(frozen=True, slots=True)
class QuotaHit:
    """A child reported its account out of quota for `model` (`at`: unix seconds).

    Kept in the ledger's `quota_hits` table, apart from the requests: the request itself
    usually goes on to another child, and its one row names that child."""

    at: float
    profile: str
    model: str
