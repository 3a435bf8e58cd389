"""The engine room: what drives the site that answers, behind one small interface.

An engine owns a browser (or, for `mock`, nothing) and turns a prompt into text deltas.
Everything above it (the session, the HTTP edge) speaks only to the `Engine` protocol, so
the browser engines (chromium, camoufox) slot in later without touching the rest.

Engines report trouble by raising `EngineError` subclasses; each carries the HTTP status
and OpenAI error code it means, and the edge turns it into a response in one place.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from coordinator.protocol.link import EngineName
from coordinator.protocol.openai import RunSettings, message_text

if TYPE_CHECKING:
    from child.settings import ChildSettings


class EngineState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    AUTH_EXPIRED = "auth_expired"
    QUOTA_EXHAUSTED = "quota_exhausted"
    BROKEN = "broken"


@dataclass(frozen=True, slots=True)
class EngineStatus:
    """A snapshot for /health. Browser fields are None when there is no browser (mock)."""

    state: EngineState
    detail: str
    browser_pid: int | None = None
    browser_connected: bool | None = None
    # When the state is expected to clear (quota resets), in seconds, if the site says.
    retry_after: int | None = None


@dataclass(frozen=True, slots=True)
class Prompt:
    """One chat turn as the engine sees it: the model, the messages as sent, the run settings."""

    model: str
    messages: tuple[Mapping[str, Any], ...]
    settings: RunSettings = field(default_factory=RunSettings)


class EngineError(Exception):
    """A failure with an HTTP meaning; subclasses fix the status and code."""

    status: int = 500
    code: str = "engine_error"
    default_retry_after: int | None = None

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Seconds until trying this child again makes sense; sent as Retry-After.
        self.retry_after = self.default_retry_after if retry_after is None else retry_after


class EngineStarting(EngineError):
    status = 503
    code = "starting"


class AuthExpired(EngineError):
    status = 503
    code = "auth_expired"


class QuotaExhausted(EngineError):
    status = 429
    code = "quota_exhausted"
    # Sites rarely say when a quota resets; a minute keeps clients from hammering.
    default_retry_after = 60


class EngineBroken(EngineError):
    status = 503
    code = "broken"


_UNAVAILABLE: dict[EngineState, type[EngineError]] = {
    EngineState.STARTING: EngineStarting,
    EngineState.AUTH_EXPIRED: AuthExpired,
    EngineState.QUOTA_EXHAUSTED: QuotaExhausted,
    EngineState.BROKEN: EngineBroken,
}


def unavailable(status: EngineStatus) -> EngineError:
    """The error to answer a chat request with while the engine is not ready."""
    error_class = _UNAVAILABLE.get(status.state, EngineBroken)
    return error_class(
        f"This child cannot serve now ({status.state}): {status.detail}", retry_after=status.retry_after
    )


class Engine(Protocol):
    """What a browser engine must offer; the mock is the reference implementation.

    `start` may take tens of seconds (browser launch, page load); the child already
    serves /health meanwhile, reporting `starting`. An exception from `start` is a boot
    failure: the child exits 1 and the coordinator restarts it with backoff. A profile
    that turns out to be logged out is not a boot failure: report AUTH_EXPIRED instead.

    `generate` is an async generator of text deltas whose concatenation is the answer.
    Closing it early (the consumer is cancelled, or calls `aclose`) must stop the
    generation on the site, so the next request starts from a quiet page.
    """

    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def status(self) -> EngineStatus: ...

    def models(self) -> tuple[str, ...]: ...

    def generate(self, prompt: Prompt) -> AsyncGenerator[str, None]: ...


@dataclass(frozen=True, slots=True)
class MockSettings:
    """Delays and injected faults for the mock engine; all read from the environment."""

    first_token_ms: int = 0
    token_ms: int = 0
    startup_ms: int = 0
    fail_start: bool = False
    fail_requests: bool = False
    # MOCK_QUOTA: every request answers 429 quota_exhausted with a Retry-After of QUOTA_SECONDS.
    quota: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str], profile: str) -> MockSettings:
        return cls(
            first_token_ms=_env_ms(environ, "MOCK_FIRST_TOKEN_MS"),
            token_ms=_env_ms(environ, "MOCK_TOKEN_MS"),
            startup_ms=_env_ms(environ, "MOCK_STARTUP_MS"),
            fail_start=profile in _env_names(environ, "MOCK_FAIL_START"),
            fail_requests=profile in _env_names(environ, "MOCK_FAIL_REQUESTS"),
            quota=profile in _env_names(environ, "MOCK_QUOTA"),
        )


class EngineConfigError(ValueError):
    """The engine cannot be set up as asked; retrying will not help."""


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


# A word and the whitespace before it, so that the tokens join back to the exact text.
_TOKEN = re.compile(r"\s*\S+")


def split_tokens(text: str) -> list[str]:
    tokens = _TOKEN.findall(text)
    rest = text[sum(map(len, tokens)) :]
    if rest:  # trailing whitespace rides on the last token (or is the only one)
        if tokens:
            tokens[-1] += rest
        else:
            tokens.append(rest)
    return tokens


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

    async def generate(self, prompt: Prompt) -> AsyncGenerator[str, None]:
        if self._settings.fail_requests:
            raise EngineError("injected request failure (MOCK_FAIL_REQUESTS)")
        if self._settings.quota:
            raise QuotaExhausted("injected quota exhaustion (MOCK_QUOTA)", retry_after=self.QUOTA_SECONDS)
        user_messages = [m for m in prompt.messages if m.get("role") == "user"]
        last_user = message_text(dict(user_messages[-1])) if user_messages else ""
        for index, token in enumerate(split_tokens("echo: " + last_user)):
            await _sleep_ms(self._settings.first_token_ms if index == 0 else self._settings.token_ms)
            yield token


async def _sleep_ms(ms: int) -> None:
    # Zero delay must not even yield to the loop per token: benchmarks want the mock fast.
    if ms > 0:
        await asyncio.sleep(ms / 1000)


def create_engine(settings: ChildSettings, environ: Mapping[str, str]) -> Engine:
    """The engine named on the command line, or EngineConfigError if it cannot be had."""
    if settings.engine == EngineName.MOCK:
        return MockEngine(MockSettings.from_env(environ, settings.profile))
    # Imported here: a mock child never loads Playwright.
    from child.engines.browser import create_browser_engine

    return create_browser_engine(settings, environ)
