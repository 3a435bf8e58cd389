"""What the replica's model finds with its tools: Google Search results and the pages of
the URLs in the prompt (URL context), as grounded sentences added to its answer and the
sources each sentence rests on.

Deterministic, so a test can predict every source: a search for the prompt's last line
finds two pages; URL context reads each URL of the prompt (three at most) and says what
it found. Nothing is fetched. On the wire (`child.replica.wire`) the spans are UTF-8 byte
offsets, as Gemini's grounding supports are; here they are character offsets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlsplit

QUERY_WORDS: Final = 8
MAX_URLS: Final = 3
URL: Final = re.compile(r"https?://[^\s<>\"'()\[\]]+[^\s<>\"'()\[\].,;:!?]")


@dataclass(frozen=True, slots=True)
class Source:
    url: str
    title: str


@dataclass(frozen=True, slots=True)
class Support:
    """The answer's characters `start` to `end` rest on these sources (indices into `sources`)."""

    start: int
    end: int
    sources: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Grounding:
    sources: tuple[Source, ...] = ()
    supports: tuple[Support, ...] = ()
    queries: tuple[str, ...] = ()
    urls_read: tuple[str, ...] = ()

    def within(self, length: int) -> Grounding:
        """Only the supports of an answer cut to `length` characters (a stop, a token limit)."""
        kept = tuple(support for support in self.supports if support.end <= length)
        return Grounding(self.sources, kept, self.queries, self.urls_read)


def ground(
    answer: str, line: str, prompt: str, *, search: bool, url_context: bool
) -> tuple[str, Grounding | None]:
    """`answer` with the grounded sentences added, and their grounding (None: no tool on)."""
    if not (search or url_context):
        return answer, None
    sources: list[Source] = []
    supports: list[Support] = []
    queries: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()

    def add(sentence: str, found: list[Source]) -> None:
        nonlocal answer
        answer += "\n\n"
        first = len(sources)
        sources.extend(found)
        supports.append(Support(len(answer), len(answer) + len(sentence), tuple(range(first, len(sources)))))
        answer += sentence

    if search:
        query = " ".join(line.split()[:QUERY_WORDS])
        queries = (query,)
        slug = quote(query.lower().replace(" ", "-"), safe="-")
        add(
            f"Replica Search has two pages about {query}.",
            [
                Source(f"https://search.replica.test/q/{slug}", f"Replica Search: {query}"),
                Source(f"https://wiki.replica.test/wiki/{slug}", f"Replica Wiki: {query}"),
            ],
        )
    if url_context:
        urls = tuple(dict.fromkeys(URL.findall(prompt)))[:MAX_URLS]
        for url in urls:
            host = urlsplit(url).hostname or url
            add(f"The page {url} says hello from {host}.", [Source(url, f"Page at {host}")])
    return answer, Grounding(tuple(sources), tuple(supports), queries, urls)


def metadata(text: str, grounding: Grounding) -> list[Any]:
    """The grounding as candidate `[8]` carries it, over the answer `text` as sent."""
    chunks = [[[source.url, source.title]] for source in grounding.sources]
    supports = []
    for support in grounding.supports:
        start, end = (len(text[:index].encode()) for index in (support.start, support.end))
        segment = [None, start or None, end, text[support.start : support.end]]
        supports.append([segment, list(support.sources)])
    return [chunks, supports, list(grounding.queries)]


def urls_read(grounding: Grounding) -> list[Any] | None:
    """The URLs read, as candidate `[12]` carries them (status 1: read); None for none."""
    return [[[url, 1] for url in grounding.urls_read]] if grounding.urls_read else None
