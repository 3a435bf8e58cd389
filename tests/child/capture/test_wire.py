"""The GenerateContent reader: frames cut out of a growing body, decoded into events."""

from __future__ import annotations

import json

import pytest

from child.capture.wire import AnswerDecoder, FrameScanner, WireError
from child.replica.grounding import ground, metadata
from coordinator.protocol.link import (
    AnswerError,
    AnswerEvent,
    Citation,
    Finish,
    FinishReason,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    Usage,
)

THOUGHT = [None, 'Let me think [about] "it"', *[None] * 10, True]
SIGNATURE = [None, None, *[None] * 10, True, None, "c2lnbmF0dXJl"]
CALL = [
    *[None] * 10,
    [
        "get_weather",
        [
            [
                ["city", [None, None, "Paris"]],
                ["days", [None, 3]],
                ["units", [None, None, None, None, [[["metric", [None, None, None, True]]]]]],
                ["tags", [None, None, None, None, None, [[[None, None, "a"], [0]]]]],
            ]
        ],
    ],
]


def frame(parts: list[object], finish: int | None = None, usage: list[object] | None = None) -> list[object]:
    candidate: list[object] = [[parts, "model"]]
    if finish is not None:
        candidate.append(finish)
    built: list[object] = [[candidate]]
    if usage is not None:
        built += [None, usage]
    return built


def body(*frames: list[object]) -> bytes:
    return json.dumps([list(frames)], ensure_ascii=False).encode()


def decode(data: bytes, step: int) -> list[AnswerEvent]:
    scanner, decoder = FrameScanner(), AnswerDecoder()
    events: list[AnswerEvent] = []
    for start in range(0, len(data), step):
        for kind, value in scanner.feed(data[start : start + step]):
            if kind == "frame":
                events.extend(decoder.frame(value))
            else:
                decoder.rest(value)
    events.append(decoder.close(complete=True))
    return events


MARKDOWN = '# Title\n\n**bold** and `code`\n\n```python\ndef f():\n    return "]}\\\\"\n```\n| a | b |\n'


@pytest.mark.parametrize("step", [1, 2, 7, 1000])
def test_frames_decode_the_same_however_the_body_is_cut(step: int) -> None:
    data = body(
        frame([THOUGHT]),
        frame([SIGNATURE, [None, MARKDOWN[:20]]]),
        frame([[None, MARKDOWN[20:] + "é✓"]], usage=[3, 5, 8]),
        frame([[None, ""]], finish=1, usage=[4, 9, 25, None, None, None, None, None, None, 12]),
    )
    events = decode(data, step)
    assert (
        events
        == [
            ReasoningDelta(THOUGHT[1]),  # type: ignore[arg-type]
            TextDelta(MARKDOWN[:20]),
            TextDelta(MARKDOWN[20:] + "é✓"),
            Finish(FinishReason.STOP, Usage(prompt=4, completion=21, reasoning=12)),
        ]
    )
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == MARKDOWN + "é✓"


def test_a_function_call_comes_with_typed_arguments() -> None:
    events = decode(body(frame([CALL], finish=1)), 5)
    call = events[0]
    assert isinstance(call, ToolCall) and call.name == "get_weather"
    assert json.loads(call.arguments) == {
        "city": "Paris",
        "days": 3,
        "units": {"metric": True},
        "tags": ["a", None],
    }
    assert events[1] == Finish(FinishReason.TOOL_CALLS, None)


@pytest.mark.parametrize(("code", "reason"), [(2, FinishReason.LENGTH), (3, FinishReason.CONTENT_FILTER)])
def test_finish_codes(code: int, reason: FinishReason) -> None:
    assert decode(body(frame([[None, "a"]], finish=code)), 3)[-1] == Finish(reason, None)


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [(8, 429, "quota_exhausted"), (7, 403, "permission_denied"), (13, 502, "site_error")],
)
def test_an_error_body_is_the_sites_refusal(code: int, status: int, kind: str) -> None:
    events = decode(json.dumps([None, [code, "Resource has been exhausted"]]).encode(), 4)
    assert len(events) == 1 and isinstance(events[0], AnswerError)
    assert (events[0].status, events[0].code) == (status, kind)


def test_a_body_cut_before_the_finish_is_an_error() -> None:
    scanner, decoder = FrameScanner(), AnswerDecoder()
    for _, value in scanner.feed(body(frame([[None, "half"]]))[:-2]):
        list(decoder.frame(value))
    end = decoder.close(complete=False)
    assert isinstance(end, AnswerError) and end.code == "answer_cut"


def test_a_body_that_is_not_the_format_is_refused() -> None:
    with pytest.raises(WireError):
        FrameScanner().feed(b"]]")


def test_thought_signatures_are_read_with_their_call_and_never_become_events() -> None:
    decoder = AnswerDecoder()
    alone = [*([None] * 12), True, None, "sig-thought"]
    signed_call = [*([None] * 10), ["f", [[]], "call_7"], None, None, None, "sig-call"]
    events = list(decoder.frame(frame([alone, signed_call], finish=1)))
    assert events == [ToolCall("call_7", "f", "{}")]
    assert decoder.signatures == [(None, "sig-thought"), ("call_7", "sig-call")]


def grounded_frame(text: str, grounding: list[object]) -> list[object]:
    built = frame([[None, text]], finish=1)
    candidate = built[0][0]  # type: ignore[index]
    candidate += [None] * (8 - len(candidate)) + [grounding]
    return built


@pytest.mark.parametrize("step", [3, 1000])
def test_grounding_becomes_citations_in_character_offsets(step: int) -> None:
    # The replica writes the grounding as Gemini does: UTF-8 byte offsets, zero left out.
    text, grounding = ground("Réponse ✓ sur les marées", "les marées", "", search=True, url_context=False)
    assert grounding is not None
    data = body(frame([[None, text[:10]]]), grounded_frame(text[10:], metadata(text, grounding)))
    events = decode(data, step)
    citations = [event for event in events if isinstance(event, Citation)]
    assert [(c.url, c.title) for c in citations] == [(s.url, s.title) for s in grounding.sources]
    for citation in citations:
        assert text[citation.start : citation.end] == "Replica Search has two pages about les marées."
    assert isinstance(events[-1], Finish)


def test_a_span_from_the_start_and_unknown_sources_are_handled() -> None:
    support = [[None, None, 5, "hello"], [0, 7]]  # start 0 is null; source 7 does not exist
    events = decode(body(grounded_frame("hello world", [[[["https://a.test/", "A"]]], [support]])), 1000)
    assert events[:2] == [TextDelta("hello world"), Citation("https://a.test/", "A", 0, 5)]
    assert len(events) == 3
