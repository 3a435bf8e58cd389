"""The mock engine: no browser, an answer predictable from the request, for tests and
benchmarks of everything above the engine.

It answers `echo: <last user message>` word by word. Environment knobs slow it down,
make it fail, and make it answer with every kind of answer event a browser engine can
produce (reasoning, a tool call, a finish reason, usage counts), so the whole relay of
those is tested without a browser. The README lists the knobs.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass

from child.engines.base import (
    EngineBroken,
    EngineConfigError,
    EngineError,
    EngineState,
    EngineStatus,
    Prompt,
    QuotaExhausted,
)
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


@dataclass(frozen=True, slots=True)
class MockSettings:
    """Delays, injected faults and the answer's shape; all read from the environment."""

    first_token_ms: int = 0
    token_ms: int = 0
    startup_ms: int = 0
    fail_start: bool = False
    fail_requests: bool = False
    # MOCK_QUOTA: every request answers 429 quota_exhausted with a Retry-After of QUOTA_SECONDS.
    quota: bool = False
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
            quota=profile in _env_names(environ, "MOCK_QUOTA"),
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


class MockEngine:
    """No browser: answers `echo: <last user message>` word by word, for tests and benchmarks."""

    name = "mock"
    MODEL = "mock"
    QUOTA_SECONDS = 600  # long enough to outlive a test that restarts the coordinator

    def __init__(self, settings: MockSettings) -> None:
        self._settings = settings
        self._state = EngineState.STARTING
        self._detail = "mock engine starting"

    async def start(self) -> None:
        if self._settings.fail_start:
            await asyncio.sleep(0.2)
            raise EngineBroken("injected boot failure (MOCK_FAIL_START)")
        await _sleep_ms(self._settings.startup_ms)
        self._state = EngineState.READY
        self._detail = "mock engine ready"

    async def close(self) -> None:
        self._state = EngineState.BROKEN
        self._detail = "mock engine closed"

    def status(self) -> EngineStatus:
        return EngineStatus(state=self._state, detail=self._detail)

    def models(self) -> tuple[str, ...]:
        return (self.MODEL,)

    async def generate(self, prompt: Prompt) -> AsyncGenerator[AnswerEvent, None]:
        settings = self._settings
        if settings.fail_requests:
            raise EngineError("injected request failure (MOCK_FAIL_REQUESTS)")
        if settings.quota:
            raise QuotaExhausted("injected quota exhaustion (MOCK_QUOTA)", retry_after=self.QUOTA_SECONDS)
        user_messages = [m for m in prompt.messages if m.get("role") == "user"]
        last_user = message_text(dict(user_messages[-1])) if user_messages else ""
        deltas: list[AnswerEvent] = [ReasoningDelta(token) for token in split_tokens(settings.reasoning)]
        if settings.tool_call:
            deltas.append(
                ToolCall(f"call_{secrets.token_hex(12)}", settings.tool_call, settings.tool_arguments)
            )
        else:
            deltas += [TextDelta(token) for token in split_tokens("echo: " + last_user)]
        for index, delta in enumerate(deltas):
            await _sleep_ms(settings.first_token_ms if index == 0 else settings.token_ms)
            yield delta
        default = FinishReason.TOOL_CALLS if settings.tool_call else FinishReason.STOP
        yield Finish(settings.finish_reason or default, settings.usage)


async def _sleep_ms(ms: int) -> None:
    # Zero delay must not even yield to the loop per token: benchmarks want the mock fast.
    if ms > 0:
        await asyncio.sleep(ms / 1000)
