"""The engine room: what drives the site that answers, behind one small interface.

An engine owns a browser (or, for `mock`, nothing) and turns a prompt into answer events
(`coordinator.protocol.link`: text, reasoning, tool calls, a finish).
Everything above it (the session, the HTTP edge) speaks only to the `Engine` protocol, so
the browser engines (chromium, camoufox) slot in later without touching the rest.

Engines report trouble by raising `EngineError` subclasses; each carries the HTTP status
and OpenAI error code it means, and the edge turns it into a response in one place.

What the site refuses comes in three kinds, which the coordinator treats apart:

- `QuotaExhausted` (429 `quota_exhausted`): the account is out of quota *for one model*
  (`model`; None when the site did not say which). The error body names it (`"model"` in
  the error object, `param` "model"); other models still serve.
- `RateLimited` (429 `rate_limited`): the whole account is asked to slow down, briefly.
- `PermissionDenied` (403 `permission_denied`): the site refused the request itself (the
  page's anti-bot proof was refused, or the account is flagged); not a quota.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from coordinator.protocol.link import AnswerEvent
from coordinator.protocol.openai import OpenAIErrorKind, RunSettings
from coordinator.protocol.request import Attachment, ChatOptions


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
    # Selectors of the site's empty chat that matched nothing at the last check (drift).
    selectors_missing: tuple[str, ...] = ()
    # Where the last answer was read ("network", or "dom": the labelled fallback), and how
    # many answers were read from the rendered page.
    answer_source: str | None = None
    answers_from_dom: int = 0
    # Models out of quota while the engine serves others: model → seconds until it resets.
    quota: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Prompt:
    """One chat turn as the engine sees it: the model, the messages as sent, the run settings,
    what else the request asks of the page (tools, output format, reasoning, search) and the
    files its messages carry."""

    model: str
    messages: tuple[Mapping[str, Any], ...]
    settings: RunSettings = field(default_factory=RunSettings)
    options: ChatOptions = field(default_factory=ChatOptions)
    attachments: tuple[Attachment, ...] = ()


class EngineError(OpenAIErrorKind):
    """A failure with an HTTP meaning; subclasses fix the status and code.

    `retry_after`: seconds until trying this child again makes sense; sent as Retry-After."""

    status, code = 500, "engine_error"


class EngineStarting(EngineError):
    status = 503
    code = "starting"


class AuthExpired(EngineError):
    status = 503
    code = "auth_expired"


class QuotaExhausted(EngineError):
    """Out of quota for `model` (None: the site did not say which, so the whole account)."""

    status = 429
    code = "quota_exhausted"
    # Sites rarely say when a quota resets; a minute keeps clients from hammering.
    default_retry_after = 60

    def __init__(self, message: str, *, model: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.model = model
        self.param = "model" if model is not None else None


class RateLimited(EngineError):
    """The whole account is rate-limited for a short while, whatever the model."""

    status = 429
    code = "rate_limited"
    default_retry_after = 300


class PermissionDenied(EngineError):
    """The site refused the request: its page proof was rejected or the account is flagged.

    Not a quota: waiting for a reset does not help; a fresh page, or another account, may."""

    status = 403
    code = "permission_denied"


# google.rpc.Code values the site's GenerateContent answers with ([null, [code, message]]).
RPC_PERMISSION_DENIED = 7
RPC_RESOURCE_EXHAUSTED = 8
RPC_UNAUTHENTICATED = 16


def site_refusal(
    model: str, message: str, *, rpc_code: int | None = None, http_status: int | None = None
) -> EngineError | None:
    """The error for a refusal the site answered a prompt with (read from its network answer),
    or None if it is none of these. `message` is the site's own words (never the prompt).

    RESOURCE_EXHAUSTED (or HTTP 429) is a quota for `model`, unless its words say rate
    limit (the whole account, briefly); PERMISSION_DENIED (or HTTP 403) is a refusal of the
    request itself, not a quota; UNAUTHENTICATED (or HTTP 401) is a logged-out session."""
    said = f"the site says: {message[:200]}" if message else "the site gave no reason"
    if rpc_code == RPC_RESOURCE_EXHAUSTED or http_status == 429:
        # "rate limit", not "rate": "Failed to generate content" is a quota message.
        if re.search(r"rate[ -]?limit", message, re.IGNORECASE):
            return RateLimited(f"this account is rate-limited; {said}")
        return QuotaExhausted(f"this account is out of quota for {model}; {said}", model=model)
    if rpc_code == RPC_PERMISSION_DENIED or http_status == 403:
        return PermissionDenied(
            f"the site refused the request (permission denied: its page proof was refused, "
            f"or the account is flagged); {said}"
        )
    if rpc_code == RPC_UNAUTHENTICATED or http_status == 401:
        return AuthExpired(f"the site no longer knows this session; log the profile in again; {said}")
    return None


class NotSupported(EngineError):
    """The request asks for something this engine cannot carry to its site: the client's to fix."""

    status = 400
    code = "unsupported_parameter"

    def __init__(self, param: str, why: str) -> None:
        super().__init__(f"'{param}' is not supported here: {why}.")
        self.param = param


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

    `generate` is an async generator of answer events: text and reasoning deltas and tool
    calls, ended by a `Finish` (an engine that just stops has finished with `stop`, its
    usage estimated by the child). Trouble is raised as an `EngineError`, or yielded as an
    `AnswerError`. Closing it early (the consumer is cancelled, or calls `aclose`) must stop the
    generation on the site, so the next request starts from a quiet page.
    """

    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def status(self) -> EngineStatus: ...

    def models(self) -> tuple[str, ...]: ...

    def generate(self, prompt: Prompt) -> AsyncGenerator[AnswerEvent, None]: ...

    async def screenshot(self) -> bytes:
        """A PNG of the page as it is now, for the dashboard; bounded in time. Raises
        EngineStarting while there is no page yet, EngineBroken when the page cannot be shot."""
        ...

    def carrying(self, prompt: Prompt) -> Mapping[str, str]:
        """Response headers that say how the engine carries what `prompt` asks beyond text
        (`X-Coordinator-Tools`: through the page, adapted, emulated); {} when there is
        nothing to say. Known before the answer starts; may raise EngineError (a 4xx)."""
        ...


class EngineConfigError(ValueError):
    """The engine cannot be set up as asked; retrying will not help."""
