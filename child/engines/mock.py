"""The mock engine: no browser, an answer predictable from the request, for tests and
benchmarks of everything above the engine.

It answers `echo: <last user message>` word by word. Environment knobs slow it down,
make it fail, and make it answer with every kind of answer event a browser engine can
produce (reasoning, a tool call, a finish reason, usage counts), so the whole relay of
those is tested without a browser. The README lists the knobs.

Like a browser engine, it writes its session back to the profile file when the write-back
is on (`ProfileWriter`); its "session" is the profile as read, with one cookie refreshed
at each look when MOCK_REFRESH_COOKIES names the profile (else nothing changes, nothing
is written).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

from child.engines import picture
from child.engines.base import (
    EngineBroken,
    EngineConfigError,
    EngineError,
    EngineStarting,
    EngineState,
    EngineStatus,
    PermissionDenied,
    Prompt,
    QuotaExhausted,
    RateLimited,
)
from child.engines.profile_writer import ProfileWriter, WriterState
from child.engines.quota import QuotaBook
from child.schema_example import example
from child.tokens import split_tokens
from coordinator.protocol.link import (
    AnswerEvent,
    Finish,
    FinishReason,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    Usage,
)
from coordinator.protocol.openai import message_text
from coordinator.protocol.request import OutputKind, ToolMode


@dataclass(frozen=True, slots=True)
class MockSettings:
    """Delays, injected faults and the answer's shape; all read from the environment."""

    first_token_ms: int = 0
    token_ms: int = 0
    startup_ms: int = 0
    fail_start: bool = False
    fail_requests: bool = False
    # MOCK_LOGGED_OUT: the profile's session has ended: the child comes up auth_expired, as a
    # browser child does when the page sends it to the sign-in page.
    logged_out: bool = False
    # MOCK_QUOTA: every request answers 429 quota_exhausted with a Retry-After of QUOTA_SECONDS,
    # for no model in particular (the whole account).
    quota: bool = False
    # MOCK_MODELS: the models offered, the first the default.
    models: tuple[str, ...] = ("mock",)
    # MOCK_QUOTA_MODELS ("profile:model,..."): this profile's models out of quota (429 naming it).
    quota_models: frozenset[str] = frozenset()
    # MOCK_RATE_LIMIT: every request answers 429 rate_limited (the whole account, briefly).
    rate_limited: bool = False
    # MOCK_LATE_REFUSAL: the quota of MOCK_QUOTA_MODELS and the rate limit of MOCK_RATE_LIMIT
    # come after the answer's first token (an error event ending the stream), as a page's may.
    late_refusal: bool = False
    # MOCK_PERMISSION_DENIED: every request answers 403 permission_denied.
    permission_denied: bool = False
    # MOCK_REFRESH_COOKIES: the session's cookie changes, so the write-back has something to write.
    refresh_cookies: bool = False
    # MOCK_REASONING: thinking streamed (word by word) before the answer.
    reasoning: str = ""
    # MOCK_TOOL_CALL / MOCK_TOOL_ARGUMENTS: a call of this function instead of text.
    tool_call: str = ""
    tool_arguments: str = "{}"
    # MOCK_FINISH_REASON: else tool_calls after a tool call, stop otherwise.
    finish_reason: FinishReason | None = None
    # MOCK_USAGE: "prompt,completion[,reasoning]" reported as the engine's count; else the child estimates.
    usage: Usage | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str], profile: str) -> MockSettings:
        return cls(
            first_token_ms=_env_ms(environ, "MOCK_FIRST_TOKEN_MS"),
            token_ms=_env_ms(environ, "MOCK_TOKEN_MS"),
            startup_ms=_env_ms(environ, "MOCK_STARTUP_MS"),
            fail_start=profile in _env_names(environ, "MOCK_FAIL_START"),
            fail_requests=profile in _env_names(environ, "MOCK_FAIL_REQUESTS"),
            logged_out=profile in _env_names(environ, "MOCK_LOGGED_OUT"),
            quota=profile in _env_names(environ, "MOCK_QUOTA"),
            models=tuple(_env_names_ordered(environ, "MOCK_MODELS")) or ("mock",),
            quota_models=_env_profile_models(environ, "MOCK_QUOTA_MODELS", profile),
            rate_limited=profile in _env_names(environ, "MOCK_RATE_LIMIT"),
            permission_denied=profile in _env_names(environ, "MOCK_PERMISSION_DENIED"),
            late_refusal=profile in _env_names(environ, "MOCK_LATE_REFUSAL"),
            refresh_cookies=profile in _env_names(environ, "MOCK_REFRESH_COOKIES"),
            reasoning=environ.get("MOCK_REASONING", ""),
            tool_call=environ.get("MOCK_TOOL_CALL", "").strip(),
            tool_arguments=_env_json_object(environ, "MOCK_TOOL_ARGUMENTS"),
            finish_reason=_env_finish_reason(environ, "MOCK_FINISH_REASON"),
            usage=_env_usage(environ, "MOCK_USAGE"),
        )


def _env_ms(environ: Mapping[str, str], name: str) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise EngineConfigError(f"{name} must be a whole number of milliseconds, not {raw!r}") from None
    if value < 0:
        raise EngineConfigError(f"{name} must not be negative, got {value}")
    return value


def _env_names(environ: Mapping[str, str], name: str) -> frozenset[str]:
    return frozenset(part.strip() for part in environ.get(name, "").split(",") if part.strip())


def _env_names_ordered(environ: Mapping[str, str], name: str) -> list[str]:
    return list(dict.fromkeys(part.strip() for part in environ.get(name, "").split(",") if part.strip()))


def _env_profile_models(environ: Mapping[str, str], name: str, profile: str) -> frozenset[str]:
    models = set()
    for pair in _env_names_ordered(environ, name):
        owner, colon, model = pair.partition(":")
        if not colon or not owner.strip() or not model.strip():
            raise EngineConfigError(f"{name} must be profile:model pairs, comma-separated, not {pair!r}")
        if owner.strip() == profile:
            models.add(model.strip())
    return frozenset(models)


def _env_json_object(environ: Mapping[str, str], name: str) -> str:
    raw = environ.get(name, "").strip() or "{}"
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise EngineConfigError(f'{name} must be a JSON object, like {{"city": "Paris"}}')
    return raw


def _env_finish_reason(environ: Mapping[str, str], name: str) -> FinishReason | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return FinishReason(raw)
    except ValueError:
        raise EngineConfigError(
            f"{name} must be one of {', '.join(r.value for r in FinishReason)}, not {raw!r}"
        ) from None


def _env_usage(environ: Mapping[str, str], name: str) -> Usage | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        counts = [int(part) for part in raw.split(",")]
    except ValueError:
        counts = []
    if len(counts) not in (2, 3) or min(counts) < 0:
        raise EngineConfigError(f"{name} must be prompt,completion[,reasoning] token counts, not {raw!r}")
    return Usage(*counts)


class MockSession:
    """The mock's stand-in for a browser context: the profile's storage state as read, with
    the cookie `mock_refreshed` given a new value at every look if `refresh`."""

    def __init__(self, state: Mapping[str, Any], *, refresh: bool) -> None:
        self._state = dict(state)
        self._refresh = refresh

    async def storage_state(self) -> Mapping[str, Any]:
        if self._refresh:
            cookies = [c for c in self._state.get("cookies", []) if c.get("name") != "mock_refreshed"]
            domain = next((c.get("domain") for c in cookies if c.get("domain")), "localhost")
            cookie = {"name": "mock_refreshed", "value": secrets.token_hex(8), "domain": domain, "path": "/"}
            self._state = {**self._state, "cookies": [*cookies, cookie]}
        return self._state


class MockEngine:
    """No browser: answers `echo: <last user message>` word by word, for tests and benchmarks."""

    name = "mock"
    QUOTA_SECONDS = 600  # long enough to outlive a test that restarts the coordinator

    def __init__(self, settings: MockSettings, writer: ProfileWriter | None = None) -> None:
        self._settings = settings
        self._state = EngineState.STARTING
        self._detail = "mock engine starting"
        self._quota = QuotaBook()
        self._writer = writer if writer is not None and writer.state is not WriterState.OFF else None
        self._session: MockSession | None = None
        self._writing: asyncio.Task[None] | None = None
        self._answers = 0  # generations begun, drawn as blocks in the screenshot
        self._shot: tuple[tuple[EngineState, int], bytes] | None = None  # the last picture, by what it shows

    async def start(self) -> None:
        if self._settings.fail_start:
            await asyncio.sleep(0.2)
            raise EngineBroken("injected boot failure (MOCK_FAIL_START)")
        await _sleep_ms(self._settings.startup_ms)
        if self._settings.logged_out:
            self._state = EngineState.AUTH_EXPIRED
            self._detail = "injected sign-in page (MOCK_LOGGED_OUT)"
            return
        if self._writer is not None:
            self._session = MockSession(self._writer.read(), refresh=self._settings.refresh_cookies)
            self._writing = asyncio.create_task(self._writer.run(self._session), name="profile-writer")
        self._state = EngineState.READY
        self._detail = "mock engine ready"

    async def close(self) -> None:
        if self._writing is not None:
            self._writing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writing
        self._state = EngineState.BROKEN
        self._detail = "mock engine closed"

    def status(self) -> EngineStatus:
        return EngineStatus(state=self._state, detail=self._detail, quota=self._quota.remaining())

    def models(self) -> tuple[str, ...]:
        return self._settings.models

    def carrying(self, prompt: Prompt) -> dict[str, str]:
        return {}  # the mock honours what it honours as asked

    async def screenshot(self) -> bytes:
        """A picture drawn in code: a band in the state's colour, a block per answer."""
        if self._state is EngineState.STARTING:
            raise EngineStarting("the mock engine is starting: no page to show yet")
        key = (self._state, self._answers)
        if self._shot is None or self._shot[0] != key:
            colour = _STATE_COLOURS.get(self._state, _STATE_COLOURS[EngineState.BROKEN])
            self._shot = (key, picture.page_png(colour, self._answers))
        return self._shot[1]

    async def generate(self, prompt: Prompt) -> AsyncGenerator[AnswerEvent, None]:
        settings = self._settings
        self._answers += 1
        if settings.fail_requests:
            raise EngineError("injected request failure (MOCK_FAIL_REQUESTS)")
        if settings.permission_denied:
            raise PermissionDenied("injected permission denied (MOCK_PERMISSION_DENIED)")
        if settings.quota:
            raise QuotaExhausted("injected quota exhaustion (MOCK_QUOTA)", retry_after=self.QUOTA_SECONDS)
        self._quota.check(prompt.model)
        refusal = self._refusal(prompt.model)
        if refusal is not None and not settings.late_refusal:
            raise refusal
        deltas = _answer(prompt, settings)
        for index, delta in enumerate(deltas):
            await _sleep_ms(settings.first_token_ms if index == 0 else settings.token_ms)
            yield delta
            if refusal is not None:
                raise refusal  # MOCK_LATE_REFUSAL: after the first token
        called = any(isinstance(delta, ToolCall) for delta in deltas)
        default = FinishReason.TOOL_CALLS if called else FinishReason.STOP
        try:
            yield Finish(settings.finish_reason or default, settings.usage)
        finally:
            # After the answer has gone out (the session closes the generator then), as a
            # browser engine writes after its page's reset.
            if self._writer is not None and self._session is not None:
                await self._writer.maybe_write(self._session)

    def _refusal(self, model: str) -> EngineError | None:
        """The injected rate limit or quota for `model` (noted in the quota book), if any."""
        if self._settings.rate_limited:
            return RateLimited("injected rate limit (MOCK_RATE_LIMIT)", retry_after=self.QUOTA_SECONDS)
        if model in self._settings.quota_models:
            exhausted = QuotaExhausted(
                f"injected quota exhaustion for {model} (MOCK_QUOTA_MODELS)",
                model=model,
                retry_after=self.QUOTA_SECONDS,
            )
            self._quota.note(exhausted)
            return exhausted
        return None


# The header band of the mock's screenshot: green serves, amber waits, red is out.
_STATE_COLOURS: dict[EngineState, picture.Colour] = {
    EngineState.READY: (52, 168, 83),
    EngineState.QUOTA_EXHAUSTED: (251, 188, 5),
    EngineState.AUTH_EXPIRED: (234, 67, 53),
    EngineState.BROKEN: (234, 67, 53),
}


def _answer(prompt: Prompt, settings: MockSettings) -> list[AnswerEvent]:
    """The mock's answer, honouring what the request asks in ways a test can see: reasoning
    at its effort (none: no reasoning), a call of the function the tool choice requires (or
    MOCK_TOOL_CALL's), JSON when JSON is asked for, and the files it carries named."""
    options = prompt.options
    user_messages = [m for m in prompt.messages if m.get("role") == "user"]
    last_user = message_text(dict(user_messages[-1])) if user_messages else ""
    deltas: list[AnswerEvent] = []
    if options.reasoning_effort != "none":
        reasoning = settings.reasoning
        if options.reasoning_effort is not None:
            reasoning = f"effort {options.reasoning_effort}: " + (reasoning or last_user)
        deltas += [ReasoningDelta(token) for token in split_tokens(reasoning)]
    call = settings.tool_call
    if options.tool_choice.mode is ToolMode.REQUIRED:
        call = options.tool_choice.function or options.tools[0].name
    elif options.tool_choice.mode is ToolMode.NONE:
        call = ""
    if call:
        # A declared function gets arguments that fit its parameters, as a model's would.
        declared = next((tool for tool in options.tools if tool.name == call), None)
        fitting = (
            json.dumps(example(declared.parameters, last_user)) if declared and declared.parameters else "{}"
        )
        arguments = settings.tool_arguments if call == settings.tool_call else fitting
        return [*deltas, ToolCall(f"call_{secrets.token_hex(12)}", call, arguments)]
    text = "echo: " + last_user
    if prompt.attachments:
        files = ", ".join(f"{f.name} ({f.mime_type}, {len(f.data)} bytes)" for f in prompt.attachments)
        text += f" [files: {files}]"
    if options.web_search or options.url_context:
        text += (
            " [tools: "
            + ", ".join(
                t for t, on in (("search", options.web_search), ("url_context", options.url_context)) if on
            )
            + "]"
        )
    if options.output.kind is OutputKind.JSON_OBJECT:
        text = json.dumps({"echo": text})
    elif options.output.kind is OutputKind.JSON_SCHEMA:
        # An instance of the schema, as a model bound to it answers (checked after, like any).
        text = json.dumps(example(options.output.schema, text))
    return [*deltas, *(TextDelta(token) for token in split_tokens(text))]


async def _sleep_ms(ms: int) -> None:
    # Zero delay must not even yield to the loop per token: benchmarks want the mock fast.
    if ms > 0:
        await asyncio.sleep(ms / 1000)
