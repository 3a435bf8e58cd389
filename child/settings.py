"""The child's configuration: command line and environment, checked once, frozen.

Everything wrong here is a configuration error (exit 78): the coordinator must not
retry a child whose command line, token or profile file is bad.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from child.engine import ENGINE_CHOICES


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

    @property
    def profile(self) -> str:
        return self.profile_path.stem


class _Parser(argparse.ArgumentParser):
    # argparse exits 2 on a bad command line; for the coordinator that is a config error too.
    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"bad command line: {message}")


def _port(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1-65535)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m child", description="One browser page behind a private HTTP API.")
    parser.add_argument("--profile", type=Path, required=True, help="storage-state JSON file")
    parser.add_argument("--api-port", type=_port, required=True)
    parser.add_argument("--stream-port", type=_port, required=True)
    parser.add_argument("--browser-port", type=_port, required=True)
    parser.add_argument("--engine", choices=ENGINE_CHOICES, default="auto")
    parser.add_argument("--headless", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--browser-path", help="the browser executable (else found as --engine says)")
    parser.add_argument("--site-url", help="the site's origin, e.g. a local replica's")
    parser.add_argument("--site-config", type=Path, help="TOML or JSON file overriding selectors")
    return parser


def load_settings(argv: Sequence[str], environ: Mapping[str, str]) -> ChildSettings:
    args = build_parser().parse_args(argv)
    token = environ.get("CHILD_TOKEN", "")
    if not token:
        raise ConfigError("CHILD_TOKEN is not set: the coordinator passes the per-run token in it")
    check_profile(args.profile)
    return ChildSettings(
        profile_path=args.profile,
        engine=args.engine,
        api_port=args.api_port,
        stream_port=args.stream_port,
        browser_port=args.browser_port,
        headless=args.headless,
        token=token,
        browser_path=args.browser_path,
        site_url=args.site_url,
        site_config=args.site_config,
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
