"""The child's configuration: the account's proxy from the environment, locale and time zone from argv."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from child.settings import ConfigError, load_settings
from coordinator.protocol.link import TOKEN_ENV, ChildArgs
from coordinator.protocol.upstream_proxy import PROXY_ENV

SECRET = "PROXY-PASS-321"


def argv(tmp_path: Path, **extra: str) -> list[str]:
    profile = tmp_path / "alice.json"
    profile.write_text(json.dumps({"cookies": [], "origins": []}))
    return ChildArgs(profile, 1, 2, 3, **extra).to_argv()  # type: ignore[arg-type]


def test_proxy_locale_and_timezone(tmp_path: Path) -> None:
    args = argv(tmp_path, locale="de-DE", timezone="Europe/Berlin")
    assert SECRET not in " ".join(args)
    environ = {TOKEN_ENV: "t", PROXY_ENV: f"socks5://alice:{SECRET}@127.0.0.1:1080"}
    settings = load_settings(args, environ)
    assert settings.proxy is not None and settings.proxy.password == SECRET
    assert (settings.locale, settings.timezone) == ("de-DE", "Europe/Berlin")
    assert SECRET not in repr(settings)


def test_no_proxy_by_default(tmp_path: Path) -> None:
    settings = load_settings(argv(tmp_path), {TOKEN_ENV: "t"})
    assert (settings.proxy, settings.locale, settings.timezone) == (None, None, None)


def test_a_bad_proxy_is_a_configuration_error_that_does_not_quote_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(argv(tmp_path), {TOKEN_ENV: "t", PROXY_ENV: f"ftp://alice:{SECRET}@host:21"})
    assert str(caught.value).startswith(f"{PROXY_ENV}: the proxy URL must start with http://")
    assert SECRET not in str(caught.value)
