"""The replica's model: deterministic answers, the markdown document, thoughts, the cuts
by stop sequences and maximum tokens, and the usage counts."""

from __future__ import annotations

import pytest

from child.replica import Finish, answer_for, reply_for
from child.replica.answer import MAX_ECHOED_WORDS, thoughts_for
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


def test_a_last_line_asking_for_a_function_call_gets_one_instead_of_text() -> None:
    reply = reply_for("context\nplease make a Function Call now", "m", max_tokens=1)
    assert reply.answer == () and reply.finish == Finish.STOP
    assert reply.call is not None and reply.call.name == "replica_lookup"
    assert reply.call.arguments["query"] == "please make a Function Call now"
    assert reply.usage.candidates == reply.call.tokens > 0
    assert reply_for("function call\nthen text", "m").call is None
