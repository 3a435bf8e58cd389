"""The child's configuration: command line and environment, checked once, frozen.

Everything wrong here is a configuration error (exit 78): the coordinator must not
retry a child whose command line, token or profile file is bad.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from coordinator.protocol.link import TOKEN_ENV, ArgsError, ChildArgs, default_ca_file
from coordinator.protocol.upstream_proxy import PROXY_ENV, ProxyURL, ProxyURLError


class ConfigError(Exception):
    """A one-line reason the child cannot start as configured."""


@dataclass(frozen=True, slots=True)
class ChildSettings:
    profile_path: Path
    engine: str
    api_port: int
    stream_port: int
    browser_port: int
    headless: bool = True
    # The per-run secret: kept out of repr so it never lands in a log line by accident.
    token: str = field(default="", repr=False)
    host: str = "127.0.0.1"
    browser_path: str | None = None
    site_url: str | None = None
    site_config: Path | None = None
    ca_file: Path = field(default_factory=default_ca_file)
    # Write-back of refreshed cookies to the profile file (child.engines.profile_writer).
    write_back_interval: float = 0.0  # seconds; 0: not on a timer
    write_back_requests: int = 0  # requests; 0: not by count
    write_back_record: Path | None = None  # the digests of the child's own writes
    # The profile's settings: the account's proxy (credentials: kept out of repr), the
    # browser context's locale and time zone.
    proxy: ProxyURL | None = field(default=None, repr=False)
    locale: str | None = None
    timezone: str | None = None

    @property
    def profile(self) -> str:
        return self.profile_path.stem


def load_settings(argv: Sequence[str], environ: Mapping[str, str]) -> ChildSettings:
    try:
        args = ChildArgs.parse(argv)
    except ArgsError as exc:
        raise ConfigError(str(exc)) from None
    token = environ.get(TOKEN_ENV, "")
    if not token:
        raise ConfigError(f"{TOKEN_ENV} is not set: the coordinator passes the per-run token in it")
    check_profile(args.profile)
    proxy = None
    if raw_proxy := environ.get(PROXY_ENV):
        try:
            proxy = ProxyURL.parse(raw_proxy)
        except ProxyURLError as exc:
            raise ConfigError(f"{PROXY_ENV}: the proxy URL {exc}") from None
    return ChildSettings(
        profile_path=args.profile,
        engine=args.engine.value,
        api_port=args.api_port,
        stream_port=args.stream_port,
        browser_port=args.browser_port,
        headless=args.headless,
        token=token,
        browser_path=args.browser_path,
        site_url=args.site_url,
        site_config=args.site_config,
        ca_file=args.ca_file or default_ca_file(),
        write_back_interval=args.write_back_interval,
        write_back_requests=args.write_back_requests,
        write_back_record=args.write_back_record,
        proxy=proxy,
        locale=args.locale,
        timezone=args.timezone,
    )


def check_profile(path: Path) -> None:
    """Fail unless the file is a JSON object; the reason names the path, never the content."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read profile {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:
        raise ConfigError(f"profile {path} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        # exc.msg and the position only: str(exc) is safe too, but nothing of the doc goes out.
        raise ConfigError(
            f"profile {path} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"profile {path} is not a storage-state object ({{'cookies': [...], ...}})")
