"""The replica's model: deterministic answers, the markdown document, thoughts, the cuts
by stop sequences and maximum tokens, and the usage counts."""

from __future__ import annotations

import json

import pytest

from child.replica import Finish, answer_for, reply_for
from child.replica.answer import MAX_ECHOED_WORDS, FunctionCall, thoughts_for
from child.replica.tools import FunctionDeclaration
from child.tokens import split_tokens


def test_names_the_model_and_repeats_the_last_non_empty_line() -> None:
    prompt = "system: be brief\n\nuser: hello   there \n  \n"
    assert answer_for(prompt, "replica-pro", None, []) == "Replica replica-pro answers: user: hello there"


def test_repeats_at_most_sixty_words() -> None:
    words = [f"w{i}" for i in range(100)]
    answer = answer_for(" ".join(words), "m", None, [])
    assert answer == "Replica m answers: " + " ".join(words[:MAX_ECHOED_WORDS])


@pytest.mark.parametrize(
    ("max_tokens", "expected", "finish"),
    [
        (None, "Replica m answers: one two three", Finish.STOP),
        (6, "Replica m answers: one two three", Finish.STOP),
        (4, "Replica m answers: one", Finish.MAX_TOKENS),
        (1, "Replica", Finish.MAX_TOKENS),
        (0, "", Finish.MAX_TOKENS),
    ],
)
def test_max_tokens_cuts_by_tokens_with_finish_2(
    max_tokens: int | None, expected: str, finish: Finish
) -> None:
    reply = reply_for("one two three", "m", max_tokens=max_tokens)
    assert ("".join(reply.answer), reply.finish) == (expected, finish)


def test_a_stop_sequence_ends_the_answer_before_it_with_finish_1() -> None:
    reply = reply_for("one two three", "m", stop=["three", "two"])
    assert ("".join(reply.answer), reply.finish) == ("Replica m answers: one ", Finish.STOP)
    assert answer_for("one two three", "m", None, ["", "absent"]) == "Replica m answers: one two three"


def test_the_token_limit_comes_first_when_the_stop_sequence_lies_beyond_it() -> None:
    # As a model generates: four tokens reach the limit before "two" is ever written.
    reply = reply_for("one two three", "m", max_tokens=4, stop=["two"])
    assert ("".join(reply.answer), reply.finish) == ("Replica m answers: one", Finish.MAX_TOKENS)
    reply = reply_for("one two three", "m", max_tokens=5, stop=["two"])
    assert ("".join(reply.answer), reply.finish) == ("Replica m answers: one ", Finish.STOP)


def test_a_last_line_asking_for_markdown_gets_the_markdown_document() -> None:
    answer = answer_for("context\nShow me some Markdown, please", "replica-flash", None, [])
    needles = (
        "# Replica report",
        "**replica-flash**",
        "- read the **prompt**",
        "| alpha | 1 |",
        "```python\ndef greet(name):\n    if name:\n",
        "You asked: Show me some Markdown, please",
    )
    for needle in needles:
        assert needle in answer
    # Only the word, only on the last line.
    assert answer_for("markdown\nplain", "m", None, []) == "Replica m answers: plain"
    assert answer_for("markdowns", "m", None, []) == "Replica m answers: markdowns"


def test_thinking_adds_thoughts_and_usage_counts_every_part() -> None:
    plain = reply_for("a b c", "replica-pro")
    thinking = reply_for("a b c", "replica-pro", thinking=True, context=["be brief", "earlier turn"])
    assert plain.thoughts == () and plain.answer == thinking.answer
    assert "".join(thinking.thoughts) == thoughts_for("a b c", "replica-pro")
    assert "The prompt ends with: a b c" in "".join(thinking.thoughts)
    usage = thinking.usage
    assert usage.prompt == 3 + 2 + 2
    assert usage.candidates == len(split_tokens("Replica replica-pro answers: a b c"))
    assert usage.thoughts == len(thinking.thoughts) > 0
    assert usage.total == usage.prompt + usage.candidates + usage.thoughts


LOOKUP = FunctionDeclaration("lookup", "", {"type": "object", "properties": {"query": {"type": "string"}}})
DAYS = {"type": "object", "properties": {"days": {"type": "integer"}}}
WEATHER = FunctionDeclaration("get_weather", "", DAYS)


def test_a_last_line_asking_for_a_function_call_calls_the_first_declared_function() -> None:
    prompt = "context\nplease make a Function Call now"
    reply = reply_for(prompt, "m", max_tokens=1, functions=[LOOKUP, WEATHER])
    assert reply.answer == () and reply.finish == Finish.STOP
    assert reply.calls == (FunctionCall("lookup", {"query": "please make a Function Call now"}),)
    assert reply.usage.candidates == reply.calls[0].tokens > 0
    assert reply_for("function call\nthen text", "m", functions=[LOOKUP]).calls == ()


def test_no_function_is_called_that_the_page_did_not_declare() -> None:
    assert reply_for("make a function call", "m").calls == ()
    assert reply_for("call get_weather", "m", functions=[LOOKUP]).calls == ()


def test_a_line_that_says_call_calls_each_function_it_names_in_order() -> None:
    reply = reply_for("call get_weather and then lookup", "m", functions=[LOOKUP, WEATHER])
    assert [call.name for call in reply.calls] == ["get_weather", "lookup"]
    assert reply.calls[0].arguments == {"days": 1}
    # Naming is not asking: without "call" it is text.
    assert reply_for("what does get_weather do?", "m", functions=[WEATHER]).calls == ()
    # A name inside another word is not the name.
    assert reply_for("call get_weather_v2", "m", functions=[WEATHER]).calls == ()


def test_structured_output_answers_an_instance_of_the_schema_unless_told_to_ignore_it() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    reply = reply_for("give json", "m", response_mime="application/json", response_schema=schema)
    assert json.loads("".join(reply.answer)) == {"n": 1}
    bare = reply_for("give json", "m", response_mime="application/json")
    assert json.loads("".join(bare.answer)) == {"answer": "give json"}
    prose = reply_for("now ignore the schema", "m", response_mime="application/json", response_schema=schema)
    assert "".join(prose.answer) == "Replica m answers: now ignore the schema"
