"""Per-profile settings: an optional TOML file beside the storage state (`alice.toml` for `alice.json`).

What an account needs of its own: its proxy (fixed for the account: the site sees one
address per account), the locale and timezone of its browser context, the models it may
serve, a weight and daily limits per model for the scheduler, and whether it runs at all.
A file that is there but wrong rejects its profile, with the file's path and the reason:
a profile is never started with defaults its owner did not mean. An unknown key is an
error too (a typo would otherwise be a setting silently not applied). The proxy's
credentials are never in a reason, a repr or `describe()`.
"""

from __future__ import annotations

import math
import re
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from coordinator.protocol.upstream_proxy import ProxyURL, ProxyURLError

SUFFIX = ".toml"
MAX_BYTES = 64 * 1024
MAX_MODELS = 256
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
# BCP 47 as browsers take it: a language, then subtags (en, en-US, zh-Hant-TW).
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$")
KEYS = ("proxy", "locale", "timezone", "models", "weight", "daily_limits", "enabled")


class SettingsError(ValueError):
    """Why a settings file cannot be used; the message names the file and never a credential."""


@dataclass(frozen=True, slots=True)
class ProfileSettings:
    proxy: ProxyURL | None = None
    locale: str | None = None  # e.g. "en-US"; None: the browser's own
    timezone: str | None = None  # an IANA name, e.g. "Europe/Berlin"; None: the machine's
    models: tuple[str, ...] | None = None  # None: every model the page offers
    weight: float = 1.0
    # Read-only; left out of the hash (a mapping has none), compared as a mapping.
    daily_limits: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    enabled: bool = True

    def allowed(self, offered: tuple[str, ...]) -> tuple[str, ...]:
        """Those of `offered` this profile may serve, in the page's order."""
        if self.models is None:
            return offered
        return tuple(model for model in offered if model in self.models)

    def browser_settings(self) -> tuple[ProxyURL | None, str | None, str | None]:
        """What the child process is started with: a change here needs a restart."""
        return self.proxy, self.locale, self.timezone

    def describe(self) -> dict[str, Any]:
        """For `coordinator profiles` and /admin/children: the proxy masked, nothing secret."""
        return {
            "proxy": self.proxy.masked() if self.proxy is not None else None,
            "locale": self.locale,
            "timezone": self.timezone,
            "models": list(self.models) if self.models is not None else None,
            "weight": self.weight,
            "daily_limits": dict(self.daily_limits),
            "enabled": self.enabled,
        }


DEFAULT = ProfileSettings()


def settings_path(profile_path: Path) -> Path:
    """Where the settings of the profile at `profile_path` are: same folder, same stem, `.toml`."""
    return profile_path.with_suffix(SUFFIX)


def read_settings_bytes(profile_path: Path) -> bytes | None:
    """The settings file's bytes, or None when there is none. OSError when it cannot be read."""
    path = settings_path(profile_path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    return data


def load(profile_path: Path) -> ProfileSettings:
    """The settings for the profile at `profile_path` (DEFAULT when it has no file), or SettingsError."""
    path = settings_path(profile_path)
    try:
        data = read_settings_bytes(profile_path)
    except OSError as exc:
        raise SettingsError(
            f"settings file {path} cannot be read: {exc.strerror or type(exc).__name__}"
        ) from None
    return DEFAULT if data is None else parse(data, path)


def parse(data: bytes, path: Path) -> ProfileSettings:
    """The settings in `data`, read from `path` (named in every error)."""
    try:
        return _parse(data)
    except SettingsError as exc:
        raise SettingsError(f"settings file {path}: {exc}") from None


def _parse(data: bytes) -> ProfileSettings:
    if len(data) > MAX_BYTES:
        raise SettingsError(f"larger than {MAX_BYTES // 1024} KiB")
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise SettingsError("not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib says where, never what: no value (a password) is quoted.
        raise SettingsError(f"not valid TOML ({exc})") from None
    unknown = [key for key in document if key not in KEYS]
    if unknown:
        raise SettingsError(f"unknown key {unknown[0]!r}; the keys are {', '.join(KEYS)}")
    return ProfileSettings(
        proxy=_proxy(document.get("proxy")),
        locale=_locale(document.get("locale")),
        timezone=_timezone(document.get("timezone")),
        models=_models(document.get("models")),
        weight=_weight(document.get("weight", 1.0)),
        daily_limits=_daily_limits(document.get("daily_limits", {})),
        enabled=_enabled(document.get("enabled", True)),
    )


def _proxy(value: object) -> ProxyURL | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SettingsError("'proxy' must be a string such as \"socks5://user:password@host:1080\"")
    try:
        return ProxyURL.parse(value)
    except ProxyURLError as exc:
        raise SettingsError(f"'proxy' {exc}") from None


def _locale(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _LOCALE.match(value):
        raise SettingsError("'locale' must be a language tag such as \"en-US\"")
    return value


def _timezone(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 64:
        raise SettingsError("'timezone' must be an IANA time zone such as \"Europe/Berlin\"")
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"'timezone' {value!r} is not a known IANA time zone") from None
    return value


def _model(value: object, where: str) -> str:
    if not isinstance(value, str) or not _MODEL.match(value):
        raise SettingsError(f'{where} must be model ids such as "gemini-2.5-pro"')
    return value


def _models(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise SettingsError(
            "'models' must be a non-empty list of model ids (to serve none, set enabled = false)"
        )
    if len(value) > MAX_MODELS:
        raise SettingsError(f"'models' lists more than {MAX_MODELS} models")
    return tuple(dict.fromkeys(_model(item, "'models'") for item in value))


def _weight(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingsError("'weight' must be a positive number")
    weight = float(value)
    if not math.isfinite(weight) or weight <= 0 or weight > 1_000_000:
        raise SettingsError("'weight' must be a positive number (at most 1000000)")
    return weight


def _daily_limits(value: object) -> Mapping[str, int]:
    if not isinstance(value, dict):
        raise SettingsError("'daily_limits' must be a table of model = requests per day")
    if len(value) > MAX_MODELS:
        raise SettingsError(f"'daily_limits' names more than {MAX_MODELS} models")
    limits: dict[str, int] = {}
    for model, limit in value.items():
        _model(model, "'daily_limits' keys")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10**9:
            raise SettingsError(f"'daily_limits' for {model!r} must be a number of requests, 1 or more")
        limits[model] = limit
    return MappingProxyType(limits)


def _enabled(value: object) -> bool:
    if not isinstance(value, bool):
        raise SettingsError("'enabled' must be true or false")
    return value
