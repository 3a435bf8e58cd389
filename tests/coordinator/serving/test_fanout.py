"""n > 1 merged from n sub-requests, on a fake child link and a real pool (no process)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest

from coordinator.ledger.entry import Tokens, usage_in
from coordinator.lifecycle.child import Child
from coordinator.lifecycle.roster import Roster
from coordinator.lifecycle.states import ChildState
from coordinator.protocol import openai as wire
from coordinator.serving.fanout import ChoiceFailed, FanOut, merge_usage
from coordinator.serving.metrics import Metrics
from coordinator.serving.pool import Pool
from coordinator.serving.proxy import Proxy
from coordinator.serving.transport import ConnectionLost
from coordinator.settings import Settings
from tests.support.lifecycle import enlist_ready
from tests.support.transport import FakeAnswer, FakeLink, Hang

USAGE = {
    "prompt_tokens": 4,
    "completion_tokens": 3,
    "total_tokens": 7,
    "completion_tokens_details": {"reasoning_tokens": 1},
}


def chat(n: int, *, stream: bool, usage: bool = True) -> wire.ChatRequest:
    body: dict[str, Any] = {"model": "mock", "n": n, "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": usage}}
    return wire.parse_chat_request(json.dumps(body).encode(), fan_out=True)


def make(tmp_path: Path, count: int) -> tuple[FanOut, FakeLink, list[Child]]:
    settings = Settings(profiles=tmp_path)
    roster = Roster(tmp_path)
    pool = Pool(roster, max_queue=10, queue_timeout=5, eject_after=3, eject_cooldown=1, eject_cooldown_max=2)
    children = enlist_ready(roster, tmp_path, count)
    link = FakeLink()
    return FanOut(Proxy(pool, settings, link, "token", Metrics()), pool), link, children


def chunk(request_id: str, **delta: Any) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}
    payload = {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion.chunk",
        "created": 5,
        "model": "mock",
    }
    return wire.sse_event(payload | {"choices": [choice]})


def usage_chunk(request_id: str) -> bytes:
    payload = {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion.chunk",
        "created": 5,
        "model": "mock",
    }
    return wire.sse_event(payload | {"choices": [], "usage": USAGE})


def events(raw: bytes) -> list[Any]:
    return [
        part.removeprefix("data: ") if part == "data: [DONE]" else json.loads(part.removeprefix("data: "))
        for part in raw.decode().split("\n\n")
        if part and not part.startswith(":")  # a comment, which SSE readers skip
    ]


def completion(text: str) -> bytes:
    message = {"role": "assistant", "content": text, "refusal": None}
    choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
    body = {"id": "chatcmpl-x", "object": "chat.completion", "created": 5, "model": "mock"}
    return json.dumps(body | {"choices": [choice], "usage": USAGE}).encode()


async def test_streams_are_merged_as_they_come(tmp_path: Path) -> None:
    fanout, link, children = make(tmp_path, 2)
    first, second = FakeAnswer(200, end=False), FakeAnswer(200, end=False)
    link.script(1, first)
    link.script(2, second)
    first.feed(chunk("r~0", role="assistant", content="a"))
    merged = await fanout.stream(chat(2, stream=True), "r")
    try:
        out = b""
        async with contextlib.aclosing(merged.chunks()) as chunks:
            second.feed(chunk("r~1", role="assistant", content="b")[:20])  # an event cut in two
            second.feed(chunk("r~1", role="assistant", content="b")[20:] + usage_chunk("r~1") + wire.SSE_DONE)
            second.finish()
            first.feed(usage_chunk("r~0") + wire.SSE_DONE)
            first.finish()
            async for piece in chunks:
                out += piece
    finally:
        await merged.aclose()
    *answers, usage, done = events(out)
    assert done == "[DONE]"
    assert [(a["choices"][0]["index"], a["choices"][0]["delta"]["content"]) for a in answers] == [
        (0, "a"),
        (1, "b"),
    ]
    assert {a["id"] for a in answers} == {usage["id"]} == {"chatcmpl-r"}
    assert (
        usage["usage"]
        == merge_usage([USAGE, USAGE])
        == {
            "prompt_tokens": 4,
            "completion_tokens": 6,
            "total_tokens": 10,
            "completion_tokens_details": {"reasoning_tokens": 2},
        }
    )
    # Each sub-request asked for one choice and for usage; both children served and are free.
    bodies = [json.loads(sent.body) for sent in link.sent]
    assert all("n" not in body and body["stream_options"]["include_usage"] for body in bodies)
    assert [child.state for child in children] == [ChildState.READY, ChildState.READY]
    assert [child.served for child in children] == [1, 1]
    assert not fanout.running


async def test_no_usage_chunk_unless_asked(tmp_path: Path) -> None:
    fanout, link, _ = make(tmp_path, 2)
    for port in (1, 2):
        link.script(
            port, FakeAnswer(200, chunk("x", role="assistant", content="a"), usage_chunk("x"), wire.SSE_DONE)
        )
    merged = await fanout.stream(chat(2, stream=True, usage=False), "r")
    try:
        out = b"".join([piece async for piece in merged.chunks()])
    finally:
        await merged.aclose()
    assert [event["choices"] for event in events(out)[:-1] if isinstance(event, dict)].count([]) == 0
    # The summed counts go to the ledger as a note (a comment) that the route takes out.
    assert usage_in(out) == Tokens(prompt=4, completion=2 * 3, reasoning=2 * 1)  # two choices of USAGE
    assert b": usage" not in wire.without_usage_note(out)


async def test_a_choice_that_breaks_ends_the_stream_with_its_error_and_stops_the_other(
    tmp_path: Path,
) -> None:
    fanout, link, children = make(tmp_path, 2)
    first, second = FakeAnswer(200, end=False), FakeAnswer(200, end=False)
    link.script(1, first)
    link.script(2, second)
    first.feed(chunk("r~0", role="assistant", content="a"))
    second.feed(chunk("r~1", role="assistant", content="b"))
    merged = await fanout.stream(chat(2, stream=True), "r")
    try:
        out = b""
        async with contextlib.aclosing(merged.chunks()) as chunks:
            async for piece in chunks:
                out += piece
                if out.count(b"data: ") == 2:
                    second.fail(ConnectionLost("connection closed mid-answer"))
    finally:
        await merged.aclose()
    *_, last = events(out)
    assert last["error"]["code"] == "child_failed"
    assert b"[DONE]" not in out
    assert sorted(link.asked("/v1/cancel/")) == [1, 2]  # the broken one, and the other stopped
    assert first.closed and second.closed
    assert all(child.state is not ChildState.BUSY for child in children)


async def test_whole_answers_are_merged(tmp_path: Path) -> None:
    fanout, link, _ = make(tmp_path, 3)
    for port, text in ((1, "a"), (2, "b"), (3, "c")):
        link.script(port, FakeAnswer(200, completion(text), headers={"content-type": "application/json"}))
    raw, children = await fanout.complete(chat(3, stream=False), "r")
    body = json.loads(raw)
    assert body["id"] == "chatcmpl-r"
    assert [(c["index"], c["message"]["content"]) for c in body["choices"]] == [(0, "a"), (1, "b"), (2, "c")]
    assert body["usage"]["completion_tokens"] == 9 and body["usage"]["prompt_tokens"] == 4
    assert sorted(children) == ["c0", "c1", "c2"]


async def test_a_refused_choice_is_the_answer_and_the_others_are_stopped(tmp_path: Path) -> None:
    fanout, link, children = make(tmp_path, 2)
    link.script(1, Hang())
    error = {"message": "no temperature here", "code": "unsupported_parameter", "param": "temperature"}
    refusal = json.dumps({"error": error}).encode()
    link.script(2, FakeAnswer(400, refusal))
    with pytest.raises(ChoiceFailed) as failed:
        await fanout.complete(chat(2, stream=False), "r")
    assert (failed.value.status, failed.value.code, failed.value.param) == (
        400,
        "unsupported_parameter",
        "temperature",
    )
    assert link.asked("/v1/cancel/") == [1]
    assert [child.state for child in children] == [ChildState.READY, ChildState.READY]
    assert not fanout.running


def test_more_choices_than_children_serving_the_model_is_refused(tmp_path: Path) -> None:
    fanout, _, _ = make(tmp_path, 2)
    fanout.check(chat(2, stream=False))
    with pytest.raises(wire.InvalidRequest) as refused:
        fanout.check(chat(3, stream=False))
    assert (refused.value.code, refused.value.param) == ("unsupported_parameter", "n")
    assert "2 children serve the model 'mock'" in refused.value.message
