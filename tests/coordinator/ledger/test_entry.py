"""What an entry becomes in the ledger: token counts read from the answer's end, and no text."""

from __future__ import annotations

import json

from coordinator.ledger.entry import COLUMNS, NO_TOKENS, Entry, Tokens, row, usage_in
from coordinator.protocol import openai as wire


def entry(**changes: object) -> Entry:
    fields: dict[str, object] = {
        "at": 1_700_000_000.0, "request_id": "r1", "route": "/v1/chat/completions", "profile": "alpha",
        "model": "mock", "status": 200, "error_code": None, "stream": False, "ttft": 0.25,
        "duration": 1.5, "key": "client-0", "tail": b"",
    }  # fmt: skip
    fields.update(changes)
    return Entry(**fields)  # type: ignore[arg-type]


USAGE = {"prompt_tokens": 7, "completion_tokens": 5, "completion_tokens_details": {"reasoning_tokens": 2}}


def test_usage_of_a_whole_completion() -> None:
    body = json.dumps({"choices": [{"message": {"content": 'say "usage": 9'}}], "usage": USAGE}).encode()
    assert usage_in(body) == Tokens(7, 5, 2)


def test_usage_of_a_stream_tail_skips_null_usage_of_earlier_chunks() -> None:
    tail = (
        wire.sse_event({"choices": [{"delta": {}, "finish_reason": "stop"}], "usage": None})
        + wire.sse_event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}})
        + b"data: [DONE]\n\n"
    )
    assert usage_in(tail) == Tokens(3, 4, None)


def test_no_usage_a_cut_one_or_nonsense_counts_nothing() -> None:
    assert usage_in(b"") is NO_TOKENS
    assert usage_in(b'data: {"usage": {"prompt_tok') is NO_TOKENS
    assert usage_in(b'{"usage": {"prompt_tokens": -1, "completion_tokens": true}}') == Tokens()


def test_text_inside_strings_is_never_taken_for_the_key() -> None:
    # A quote inside a JSON string is escaped, so the content's "usage": is not a key.
    body = json.dumps({"choices": [{"message": {"content": '"usage": {"prompt_tokens": 99}'}}]}).encode()
    assert usage_in(body) is NO_TOKENS


def test_row_has_every_column_and_milliseconds() -> None:
    values = dict(zip(COLUMNS, row(entry(tail=json.dumps({"usage": USAGE}).encode())), strict=True))
    assert values["ttft_ms"] == 250.0 and values["duration_ms"] == 1500.0
    assert (values["prompt_tokens"], values["completion_tokens"], values["reasoning_tokens"]) == (7, 5, 2)
    assert values["stream"] == 0 and values["key"] == "client-0"


def test_an_error_reply_counts_no_tokens() -> None:
    values = dict(
        zip(
            COLUMNS,
            row(entry(status=502, error_code="child_failed", tail=b'{"usage": {"prompt_tokens": 1}}')),
            strict=True,
        )
    )
    assert values["prompt_tokens"] is None and values["error_code"] == "child_failed"


def test_a_stream_without_done_is_marked_incomplete() -> None:
    broken = dict(zip(COLUMNS, row(entry(stream=True, tail=b'data: {"error": {}}\n\n')), strict=True))
    assert broken["error_code"] == "stream_incomplete"
    whole = dict(zip(COLUMNS, row(entry(stream=True, tail=b"data: [DONE]\n\n")), strict=True))
    assert whole["error_code"] is None
