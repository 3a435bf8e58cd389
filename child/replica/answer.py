"""The replica's "model": a deterministic answer for a prompt, and its split into tokens.

Deterministic so that a test (or a newcomer running the demo) can predict every answer
from the request alone: it names the model and repeats the last line of the prompt, then
honours the two run settings whose effect a client can see, maximum tokens and stop
sequences. A "token" here is a word with the whitespace before it (`child.tokens`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from child.tokens import TOKEN

# Enough to show the prompt came through without echoing a whole pasted conversation.
MAX_ECHOED_WORDS: Final = 60


def last_line(prompt: str) -> str:
    """The last line of `prompt` with any text on it, its words joined by single spaces."""
    for line in reversed(prompt.splitlines()):
        words = line.split()
        if words:
            return " ".join(words[:MAX_ECHOED_WORDS])
    return ""


def first_words(text: str, count: int) -> str:
    """The prefix of `text` that ends with its `count`-th whitespace-separated word."""
    if count <= 0:
        return ""
    end = 0
    for index, match in enumerate(TOKEN.finditer(text)):
        if index == count:
            break
        end = match.end()
    else:
        # Fewer words than the limit: nothing is cut, not even trailing whitespace.
        return text
    return text[:end]


def cut_at_stop(text: str, stop: Iterable[str]) -> str:
    """`text` up to (not including) the earliest occurrence of any non-empty stop string."""
    found = [index for index in (text.find(s) for s in stop if s) if index >= 0]
    return text[: min(found)] if found else text


def answer_for(prompt: str, model: str, max_tokens: int | None, stop: list[str]) -> str:
    """The full answer the replica gives to `prompt` on `model` (a bare id, no `models/`)."""
    answer = f"Replica {model} answers: " + last_line(prompt)
    if max_tokens is not None:
        answer = first_words(answer, max_tokens)
    return cut_at_stop(answer, stop)
