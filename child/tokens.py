"""What the child calls a token when no tokenizer is at hand: a word and the whitespace
before it, so that the tokens of a text join back to exactly that text.

The mock engine streams its answer in these pieces, and the replica renders its answer
in them, so both stream at a word's pace and can be counted the same way.
"""

from __future__ import annotations

import re
from typing import Final

TOKEN: Final = re.compile(r"\s*\S+")


def split_tokens(text: str) -> list[str]:
    """`text` as words with their leading whitespace; `"".join` gives `text` back."""
    tokens = TOKEN.findall(text)
    tail = text[sum(map(len, tokens)) :]
    if tail:
        # Whitespace after the last word (a stop string cut just after a space) rides on it.
        if tokens:
            tokens[-1] += tail
        else:
            tokens.append(tail)
    return tokens
