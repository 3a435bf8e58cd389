"""The coordinator ⇄ child contract, in one place: how a child is started, how it is
called, what it says about itself and how it ends.

Both processes import this module and nothing else of each other, so a change to the
contract is a change here, seen by both sides at once. Stdlib only.

- Start: `python -m child` with the arguments of `ChildArgs`, the per-run token in the
  environment variable `TOKEN_ENV`, the account's proxy, if it has one, in
  `upstream_proxy.PROXY_ENV`.
- Calls: every route but `/health` needs the token in the `TOKEN_HEADER` header.
- Health: `GET /health` answers a `Health` body (200 when it can take a request).
- End: the exit code says whether a restart can help (`EXIT_CONFIG` says it cannot).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, NoReturn, TypeVar

T = TypeVar("T")

# -- exit codes --------------------------------------------------------------------------

EXIT_STOPPED: Final = 0  # stopped on request
EXIT_BOOT_FAILED: Final = 1  # failed: a restart with backoff may help
EXIT_CONFIG: Final = 78  # EX_CONFIG: configured wrongly; a restart cannot help until something changes

# -- the per-run token -------------------------------------------------------------------

TOKEN_ENV: Final = "CHILD_TOKEN"
TOKEN_HEADER: Final = "X-Child-Token"
# The error code of an answer that is not what the request asked for (JSON, its schema, a
# required call): the model's doing, so the coordinator passes it on and tries no other child.
INVALID_OUTPUT: Final = "invalid_output"
# Headers of a child's answer that the coordinator passes on to the client (lower case):
# how the child carried the request's tools and output format, the thinking level it used.
RELAYED_HEADERS: Final = ("x-coordinator-tools", "x-coordinator-thinking-level")
# A stream whose client did not ask for usage still ends with the counts, for the ledger:
# an SSE comment (`: usage {"usage": {...}}`, which every SSE reader skips) just before
# `[DONE]`. The coordinator takes it out of what the client receives.
USAGE_NOTE: Final = b": usage "


class EngineName(StrEnum):
    """What drives the page: a browser (camoufox, chromium), none (mock), or the best found (auto)."""

    AUTO = "auto"
    CAMOUFOX = "camoufox"
    CHROMIUM = "chromium"
    MOCK = "mock"


# -- the command line --------------------------------------------------------------------


class ArgsError(ValueError):
    """The command line does not follow the contract (a configuration error: exit 78)."""


@dataclass(frozen=True, slots=True)
class ChildArgs:
    """The child's command line, built by the coordinator and parsed by the child."""

    profile: Path
    api_port: int
    stream_port: int
    browser_port: int
    engine: EngineName = EngineName.AUTO
    headless: bool = True
    browser_path: str | None = None
    site_url: str | None = None
    site_config: Path | None = None
    # The capture's CA (made by the first child that needs it); None: default_ca_file().
    ca_file: Path | None = None
    # Refreshed cookies go back to the profile file every so many seconds and requests
    # (0: not by that measure), after the digest is added to this record (writeback.py).
    write_back_interval: float = 0.0
    write_back_requests: int = 0
    write_back_record: Path | None = None
    # The profile's settings file: its browser context's locale and IANA time zone.
    locale: str | None = None
    timezone: str | None = None

    def to_argv(self) -> list[str]:
        """The arguments after `python -m child`."""
        argv = [
            "--profile",
            str(self.profile),
            "--api-port",
            str(self.api_port),
            "--stream-port",
            str(self.stream_port),
            "--browser-port",
            str(self.browser_port),
            "--engine",
            self.engine.value,
            "--headless" if self.headless else "--no-headless",
        ]
        if self.write_back_interval > 0:
            argv += ["--write-back-interval", f"{self.write_back_interval:g}"]
        if self.write_back_requests > 0:
            argv += ["--write-back-requests", str(self.write_back_requests)]
        for flag, value in (
            ("--browser-path", self.browser_path),
            ("--site-url", self.site_url),
            ("--site-config", self.site_config),
            ("--ca-file", self.ca_file),
            ("--write-back-record", self.write_back_record),
            ("--locale", self.locale),
            ("--timezone", self.timezone),
        ):
            if value:
                argv += [flag, str(value)]
        return argv

    @classmethod
    def parse(cls, argv: Sequence[str]) -> ChildArgs:
        args = _parser().parse_args(list(argv))
        return cls(
            profile=args.profile,
            api_port=args.api_port,
            stream_port=args.stream_port,
            browser_port=args.browser_port,
            engine=EngineName(args.engine),
            headless=args.headless,
            browser_path=args.browser_path,
            site_url=args.site_url,
            site_config=args.site_config,
            ca_file=args.ca_file,
            write_back_interval=args.write_back_interval,
            write_back_requests=args.write_back_requests,
            write_back_record=args.write_back_record,
            locale=args.locale,
            timezone=args.timezone,
        )


class _Parser(argparse.ArgumentParser):
    # argparse exits 2 on a bad command line; for the coordinator that is a config error.
    def error(self, message: str) -> NoReturn:
        raise ArgsError(f"bad command line: {message}")


def _port(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1-65535)")
    return value


def _not_negative(kind: type[int] | type[float]) -> Any:
    def convert(raw: str) -> int | float:
        try:
            value = kind(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a number") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{value} is negative")
        return value

    return convert


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m child", description="One browser page behind a private HTTP API.")
    parser.add_argument("--profile", type=Path, required=True, help="storage-state JSON file")
    parser.add_argument("--api-port", type=_port, required=True)
    parser.add_argument("--stream-port", type=_port, required=True)
    parser.add_argument("--browser-port", type=_port, required=True)
    parser.add_argument("--engine", choices=[e.value for e in EngineName], default=EngineName.AUTO.value)
    parser.add_argument("--headless", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--browser-path", help="the browser executable (else found as --engine says)")
    parser.add_argument("--site-url", help="the site's origin, e.g. a local replica's")
    parser.add_argument("--site-config", type=Path, help="TOML or JSON file overriding selectors")
    parser.add_argument("--ca-file", type=Path, help="the capture's CA (PEM, mode 600; made if missing)")
    parser.add_argument(
        "--write-back-interval", type=_not_negative(float), default=0.0, help="seconds; 0: not on a timer"
    )
    parser.add_argument(
        "--write-back-requests", type=_not_negative(int), default=0, help="requests; 0: not by count"
    )
    parser.add_argument("--write-back-record", type=Path, help="where the digests of the writes go")
    parser.add_argument("--locale", help="the browser context's locale, e.g. en-US")
    parser.add_argument("--timezone", help="the browser context's IANA time zone, e.g. Europe/Berlin")
    return parser


def default_ca_file() -> Path:
    """Where the capture's CA lives unless --ca-file says: one per user and machine."""
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "coordinator" / "capture-ca.pem"


# -- /health ------------------------------------------------------------------------------


class HealthStatus(StrEnum):
    """The child's word for itself in `/health`."""

    STARTING = "starting"
    READY = "ready"
    BUSY = "busy"
    AUTH_EXPIRED = "auth_expired"
    QUOTA_EXHAUSTED = "quota_exhausted"
    BROKEN = "broken"


CAN_SERVE: Final = frozenset({HealthStatus.READY, HealthStatus.BUSY})


class HealthError(ValueError):
    """A `/health` body that does not follow the contract."""


@dataclass(frozen=True, slots=True)
class Health:
    """The body of `GET /health`. Browser fields are None when there is no browser (mock)."""

    status: HealthStatus
    detail: str | None = None
    profile: str = ""
    engine: str = ""
    pid: int | None = None
    browser_pid: int | None = None
    browser_connected: bool | None = None
    models: tuple[str, ...] = ()
    retry_after: float | None = None  # seconds until a quota cooldown ends, if the site says
    # Models out of quota while the others serve: model → seconds until its quota resets.
    quota: Mapping[str, float] = field(default_factory=dict)
    request_id: str | None = None
    served: int = 0
    api_port: int | None = None
    stream_port: int | None = None
    browser_port: int | None = None
    # The site's selectors that no longer match its empty chat: the page changed (drift).
    selectors_missing: tuple[str, ...] = ()
    # Answers read from the rendered page because the capture saw none: labelled, never silent.
    answers_from_dom: int = 0

    @property
    def can_serve(self) -> bool:
        return self.status in CAN_SERVE

    @property
    def http_status(self) -> int:
        return 200 if self.can_serve else 503

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "detail": self.detail,
            "profile": self.profile,
            "engine": self.engine,
            "pid": self.pid,
            "browser_pid": self.browser_pid,
            "browser_connected": self.browser_connected,
            "models": list(self.models),
            "retry_after": self.retry_after,
            "quota": dict(self.quota),
            "request_id": self.request_id,
            "served": self.served,
            "api_port": self.api_port,
            "stream_port": self.stream_port,
            "browser_port": self.browser_port,
            "selectors_missing": list(self.selectors_missing),
            "answers_from_dom": self.answers_from_dom,
        }

    @classmethod
    def from_json(cls, body: object) -> Health:
        """Read a child's answer; fields of the wrong type are dropped, a bad status refused."""
        if not isinstance(body, Mapping):
            raise HealthError("/health did not answer a JSON object")
        try:
            status = HealthStatus(str(body.get("status")))
        except ValueError:
            raise HealthError(f"/health answered an unknown status {body.get('status')!r}") from None
        models = body.get("models")
        missing = body.get("selectors_missing")
        retry_after = _number(body.get("retry_after"))
        return cls(
            status=status,
            detail=_typed(body, "detail", str),
            profile=_typed(body, "profile", str) or "",
            engine=_typed(body, "engine", str) or "",
            pid=_typed(body, "pid", int),
            browser_pid=_typed(body, "browser_pid", int),
            browser_connected=_typed(body, "browser_connected", bool),
            models=_strings(models),
            retry_after=retry_after if retry_after is not None and retry_after > 0 else None,
            quota=_quota(body.get("quota")),
            request_id=_typed(body, "request_id", str),
            served=_typed(body, "served", int) or 0,
            api_port=_typed(body, "api_port", int),
            stream_port=_typed(body, "stream_port", int),
            browser_port=_typed(body, "browser_port", int),
            selectors_missing=_strings(missing),
            answers_from_dom=_typed(body, "answers_from_dom", int) or 0,
        )


def _typed(body: Mapping[str, Any], key: str, kind: type[T]) -> T | None:
    value = body.get(key)
    if kind is int and isinstance(value, bool):
        return None
    return value if isinstance(value, kind) else None


def _strings(value: object) -> tuple[str, ...]:
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()


def _quota(value: object) -> dict[str, float]:
    if not isinstance(value, Mapping):
        return {}
    return {
        model: seconds
        for model, raw in value.items()
        if isinstance(model, str) and (seconds := _number(raw)) is not None and seconds > 0
    }


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


# -- answer events -----------------------------------------------------------------------
# What an engine yields while it answers; the child turns them into OpenAI's JSON and SSE
# (`coordinator.protocol.openai.Answer`). Text and reasoning come in pieces; a tool call
# comes whole; a finish ends a complete answer, an error one that cannot complete.


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer's text."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's thinking, shown apart from the answer (`reasoning_content`)."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function the model asks the client to call; `arguments` is a JSON object as a string."""

    id: str
    name: str
    arguments: str


class FinishReason(StrEnum):
    """Why an answer ended, in OpenAI's words."""

    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the engine knows them; reasoning tokens are part of `completion`."""

    prompt: int
    completion: int
    reasoning: int = 0


@dataclass(frozen=True, slots=True)
class Finish:
    """The end of a complete answer. `usage` None: the engine cannot count; the child estimates."""

    reason: FinishReason = FinishReason.STOP
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class Citation:
    """A source the answer rests on (Google Search, URL context): characters `start` to
    `end` of the answer's text are supported by the page at `url`."""

    url: str
    title: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class SettingApplied:
    """A setting the page used for this answer where the request could only ask for it
    approximately (the thinking level chosen for a reasoning effort); it comes before any
    text, and the child sends it as the header `X-Coordinator-<name>`."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class AnswerError:
    """An answer that cannot complete; `status` and `code` as in an OpenAI error body."""

    message: str
    status: int = 500
    code: str = "engine_error"


AnswerEvent = TextDelta | ReasoningDelta | ToolCall | Citation | SettingApplied | Finish | AnswerError
