"""Tokens without a tokenizer: words with their leading whitespace."""

from __future__ import annotations

import pytest

from child.tokens import split_tokens


@pytest.mark.parametrize("text", ["", " ", "a", "a b  c", "Replica m answers: one ", "  lead"])
def test_tokens_are_words_with_leading_space_and_join_back(text: str) -> None:
    tokens = split_tokens(text)
    assert "".join(tokens) == text
    assert all(token.strip() for token in tokens) or text.isspace()


def test_tokens_of_a_sentence() -> None:
    assert split_tokens("a b c") == ["a", " b", " c"]
