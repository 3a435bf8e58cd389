"""The replica's deterministic answer and its split into tokens."""

from __future__ import annotations

import pytest

from child.replica import answer_for
from child.replica.answer import MAX_ECHOED_WORDS


def test_names_the_model_and_repeats_the_last_non_empty_line() -> None:
    prompt = "system: be brief\n\nuser: hello   there \n  \n"
    assert answer_for(prompt, "replica-pro", None, []) == "Replica replica-pro answers: user: hello there"


def test_repeats_at_most_sixty_words() -> None:
    words = [f"w{i}" for i in range(100)]
    answer = answer_for(" ".join(words), "m", None, [])
    assert answer == "Replica m answers: " + " ".join(words[:MAX_ECHOED_WORDS])


@pytest.mark.parametrize(
    ("max_tokens", "expected"),
    [
        (None, "Replica m answers: one two three"),
        (100, "Replica m answers: one two three"),
        (4, "Replica m answers: one"),
        (1, "Replica"),
        (0, ""),
    ],
)
def test_truncates_to_max_tokens_words(max_tokens: int | None, expected: str) -> None:
    assert answer_for("one two three", "m", max_tokens, []) == expected


def test_cuts_before_the_earliest_stop_string() -> None:
    assert answer_for("one two three", "m", None, ["three", "two"]) == "Replica m answers: one "
    assert answer_for("one two three", "m", None, ["", "absent"]) == "Replica m answers: one two three"


def test_stop_applies_after_truncation() -> None:
    assert answer_for("one two three", "m", 4, ["two"]) == "Replica m answers: one"
