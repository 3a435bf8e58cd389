"""The replica's "model": what it answers to a request, decided from the request alone.

Deterministic so that a test (or a newcomer running the demo) can predict every answer:
by default it names the model and repeats the last line of the prompt; a last line that
asks for `markdown` gets a fixed markdown document (headings, bold, a list, a table, a
fenced code block), the kind of answer a DOM reader gets wrong; a thinking model thinks
first. Then it honours the settings whose effect a client can see: stop sequences end
the answer (finish 1), maximum output tokens cut it (finish 2). A "token" is a word with
the whitespace before it (`child.tokens`), and every count in the usage is of those.

Beyond spec-11 C, the tools (`child.replica.tools`): like a model, it calls only functions
the page declared. A last line that says "call" and names declared functions is answered
with a call of each (two named: two calls in one answer, as parallel calls come); a last
line asking for a "function call" that names none calls the first declared function; the
arguments are an instance of the function's parameters (`child.schema_example`), strings
being the last line. With structured output on, the answer is JSON: an instance of the
response schema, or `{"answer": <last line>}` without one; a last line that says "ignore
the schema" gets its usual prose instead, as a model may. Functions a prompt offers in its
own words (a line `Functions you may call through this prompt (JSON): [...]`, the
driver's emulation) are called the same way, but written as the prompt asks, one
`<tool_call>{"name", "arguments"}</tool_call>` line per call, as a model that follows
the instruction would.

A system instruction shows: the answer ends by quoting its last line, so a test can tell
it reached the page's System instructions field (the wire's `[8]`) rather than the prompt.
The thinking level (`level`, a name of `settings_panel.LEVEL_CODES`) sets how much it
thinks: High all of `THOUGHTS`, Medium its first two paragraphs, Low the first, Minimal
nothing. With Google Search or URL context on, it adds grounded sentences and their
sources (`child.replica.grounding`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Final

from child.replica.grounding import Grounding, ground
from child.replica.tools import JSON_MIME, FunctionDeclaration
from child.replica.uploads import InlineFile, describe
from child.schema_example import example
from child.tokens import split_tokens

# Enough to show the prompt came through without echoing a whole pasted conversation.
MAX_ECHOED_WORDS: Final = 60
MARKDOWN_WORD: Final = re.compile(r"\bmarkdown\b", re.IGNORECASE)
FUNCTION_CALL_WORDS: Final = re.compile(r"\bfunction call\b", re.IGNORECASE)
CALL_WORD: Final = re.compile(r"\bcall\b", re.IGNORECASE)
PROMPTED_FUNCTIONS: Final = re.compile(
    r"^Functions you may call through this prompt \(JSON\): (\[.*\])$", re.MULTILINE
)
IGNORE_SCHEMA: Final = re.compile(r"\bignore the schema\b", re.IGNORECASE)

# Indented code, a table and nested emphasis: what a DOM reader flattens or mixes with
# the code block's icon texts; brackets and quotes inside the text, which a reader of the
# frames must not take for the JSON around them. `{model}` and `{line}` are filled in.
MARKDOWN_DOCUMENT: Final = """# Replica report

The replica **{model}** renders *markdown* with `inline code` and `["brackets", [1]]` too.

## Steps

- read the **prompt**
- think *briefly*
- answer in `markdown`

1. first
2. second

| name | value |
| --- | --- |
| alpha | 1 |
| beta | **2** |

```python
def greet(name):
    if name:
        return f"hello {{name}}"
    return "hello"
```

You asked: {line}"""

THOUGHTS: Final = """**Reading the request**

The prompt ends with: {line}

I answer as {model}, deterministically."""
# How many paragraphs of THOUGHTS each thinking level thinks.
THOUGHT_PARAGRAPHS: Final = {"Minimal": 0, "Low": 1, "Medium": 2, "High": 3}
SYSTEM_WORDS: Final = 20


class Finish(IntEnum):
    """Why an answer ended, as the wire codes it."""

    STOP = 1
    MAX_TOKENS = 2
    SAFETY = 3


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts, as the answer's usage reports them."""

    prompt: int = 0
    candidates: int = 0
    thoughts: int = 0

    @property
    def total(self) -> int:
        return self.prompt + self.candidates + self.thoughts


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A call the model asks the client to make, with JSON-like arguments."""

    name: str
    arguments: Mapping[str, object] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return len(split_tokens(self.name + " " + json.dumps(self.arguments)))


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole answer before it is sent: thought tokens, answer tokens (or a function
    call instead), how it ends."""

    thoughts: tuple[str, ...]
    answer: tuple[str, ...]
    finish: Finish
    prompt_tokens: int
    calls: tuple[FunctionCall, ...] = ()

    @property
    def call(self) -> FunctionCall | None:
        return self.calls[0] if self.calls else None

    grounding: Grounding | None = None

    @property
    def usage(self) -> Usage:
        candidates = len(self.answer) + sum(call.tokens for call in self.calls)
        return Usage(self.prompt_tokens, candidates, len(self.thoughts))


def last_line(prompt: str) -> str:
    """The last line of `prompt` with any text on it, its words joined by single spaces."""
    for line in reversed(prompt.splitlines()):
        words = line.split()
        if words:
            return " ".join(words[:MAX_ECHOED_WORDS])
    return ""


def cut_at_stop(text: str, stop: Iterable[str]) -> str:
    """`text` up to (not including) the earliest occurrence of any non-empty stop string."""
    found = [index for index in (text.find(s) for s in stop if s) if index >= 0]
    return text[: min(found)] if found else text


def full_answer(prompt: str, model: str, files: Sequence[InlineFile] = (), system: str = "") -> str:
    """The answer before any setting applies: the markdown document, or the echo; after
    what it received, when the prompt carries files (`child.replica.uploads`); then the
    system instruction's last line, if there is one."""
    line = last_line(prompt)
    text = (
        MARKDOWN_DOCUMENT.format(model=model, line=line)
        if MARKDOWN_WORD.search(line)
        else (f"Replica {model} answers: {line}")
    )
    if files:
        text = describe(files) + "\n\n" + text
    instruction = " ".join(last_line(system).split()[:SYSTEM_WORDS])
    return f"{text} (system instruction: {instruction})" if instruction else text


def function_calls_for(prompt: str, functions: Sequence[FunctionDeclaration]) -> tuple[FunctionCall, ...]:
    """The calls the last line asks for, of declared functions only (see the module's doc)."""
    if not functions:
        return ()
    line = last_line(prompt)
    named = []
    for function in functions:
        found = re.search(rf"(?<![\w.:-]){re.escape(function.name)}(?![\w.:-])", line)
        if found:
            named.append((found.start(), function))
    if named and CALL_WORD.search(line):
        chosen = [function for _, function in sorted(named, key=lambda pair: pair[0])]
    elif FUNCTION_CALL_WORDS.search(line):
        chosen = [functions[0]]
    else:
        return ()
    return tuple(FunctionCall(f.name, example(f.parameters, line) if f.parameters else {}) for f in chosen)


def prompted_functions(prompt: str) -> tuple[FunctionDeclaration, ...]:
    """The functions a prompt offers in its own words, as a model reads them: a line
    `Functions you may call through this prompt (JSON): [...]` (the driver's emulation for
    functions the page cannot take; `child.site.tools`)."""
    found = PROMPTED_FUNCTIONS.search(prompt)
    try:
        listed = json.loads(found.group(1)) if found else []
    except ValueError:
        return ()
    return tuple(
        FunctionDeclaration(item["name"], str(item.get("description", "")), item.get("parameters") or {})
        for item in listed
        if isinstance(item, dict) and isinstance(item.get("name"), str)
    )


def call_line(call: FunctionCall) -> str:
    """A call written as the prompt that offered the function asks for it."""
    return "<tool_call>" + json.dumps({"name": call.name, "arguments": call.arguments}) + "</tool_call>"


def json_answer(prompt: str, schema: Mapping[str, object] | None) -> str | None:
    """The JSON a structured-output answer is (None: the model ignores the schema)."""
    line = last_line(prompt)
    if IGNORE_SCHEMA.search(line):
        return None
    return json.dumps(example(schema, line) if schema else {"answer": line})


def thoughts_for(prompt: str, model: str, level: str | None = None) -> str:
    """What the model thinks at `level` (None: a request without one, thought through fully)."""
    paragraphs = THOUGHTS.format(model=model, line=last_line(prompt)).split("\n\n")
    return "\n\n".join(paragraphs[: THOUGHT_PARAGRAPHS.get(level or "High", len(paragraphs))])


def reply_for(
    prompt: str,
    model: str,
    *,
    max_tokens: int | None = None,
    stop: Iterable[str] = (),
    thinking: bool = False,
    context: Iterable[str] = (),
    files: Sequence[InlineFile] = (),
    functions: Sequence[FunctionDeclaration] = (),
    response_mime: str | None = None,
    response_schema: Mapping[str, object] | None = None,
    system: str = "",
    level: str | None = None,
    search: bool = False,
    url_context: bool = False,
) -> Reply:
    """The replica's reply to `prompt` on `model` (a bare id); `context` is the rest of
    the request's text (system instruction, earlier turns), counted in the prompt usage;
    `functions`, `response_mime` and `response_schema` are the request's tools, `system`
    the system instruction, `level` the thinking level, `search` and `url_context` the
    tools that are on."""
    # As a model generates: token by token until the limit, ending early where a stop
    # sequence has appeared in full (the stop sequence itself is not sent).
    text = full_answer(prompt, model, files, system)
    grounding: Grounding | None = None
    structured = json_answer(prompt, response_schema) if response_mime == JSON_MIME else None
    prompted = (
        ()
        if function_calls_for(prompt, functions)
        else function_calls_for(prompt, prompted_functions(prompt))
    )
    if prompted:
        text = "\n".join(call_line(call) for call in prompted)  # as the prompt asked calls to be written
    elif structured is not None:
        text = structured  # JSON of the schema: no sentence may be added to it
    else:
        text, grounding = ground(text, last_line(prompt), prompt, search=search, url_context=url_context)
    finish = Finish.STOP
    tokens = split_tokens(text)
    if max_tokens is not None and len(tokens) > max_tokens:
        text, finish = "".join(tokens[: max(max_tokens, 0)]), Finish.MAX_TOKENS
    cut = cut_at_stop(text, stop)
    if cut != text:
        text, finish = cut, Finish.STOP
    answer = split_tokens(text)
    grounding = grounding.within(len(text)) if grounding is not None else None
    thoughts = split_tokens(thoughts_for(prompt, model, level)) if thinking else []
    prompt_tokens = sum(len(split_tokens(text)) for text in (prompt, *context))
    calls = function_calls_for(prompt, functions)
    if calls:
        return Reply(tuple(thoughts), (), Finish.STOP, prompt_tokens, calls)
    return Reply(tuple(thoughts), tuple(answer), finish, prompt_tokens, grounding=grounding)


def answer_for(prompt: str, model: str, max_tokens: int | None, stop: list[str]) -> str:
    """The answer text the replica sends for `prompt` on `model` (no thoughts)."""
    return "".join(reply_for(prompt, model, max_tokens=max_tokens, stop=stop).answer)
