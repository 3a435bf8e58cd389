"""ReplicaConfig refuses what it cannot serve, and the command line builds one from flags."""

from __future__ import annotations

from typing import Any

import pytest

from child.replica import DRIFTS, ReplicaConfig
from child.replica.__main__ import build_config, parse_args


def test_defaults_follow_the_contract() -> None:
    config = ReplicaConfig()
    assert config.models == ("replica-pro", "replica-flash", "replica-lite")
    assert config.default_model == "replica-flash"
    assert config.models.index(config.default_model) > 0
    assert config.thinking_models == {"replica-pro"} and config.no_sampling_models == {"replica-lite"}
    assert config.popups is True and config.permission_denied == frozenset() and config.drift == frozenset()


def test_sets_and_lists_given_by_callers_become_frozen() -> None:
    given: dict[str, Any] = {"sessions": {"a"}, "models": ["m"], "default_model": "m", "thinking_models": [],
                             "no_sampling_models": set(), "drift": ["prompt"]}  # fmt: skip
    config = ReplicaConfig(**given)
    assert config.sessions == frozenset({"a"}) and config.models == ("m",) and config.drift == {"prompt"}
    with pytest.raises(AttributeError):
        config.token_ms = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"models": ()}, "at least one model"),
        ({"models": ("models/x",), "default_model": "models/x"}, "bare"),
        ({"models": ("a", "a"), "default_model": "a"}, "distinct"),
        ({"default_model": "nope"}, "default_model 'nope'"),
        ({"thinking_models": frozenset({"x"})}, "thinking_models names models that are not offered"),
        ({"permission_denied": frozenset({"x"})}, "permission_denied"),
        ({"token_ms": -1}, "token_ms"),
        ({"quota_after": 1.5}, "quota_after"),
        ({"popup_delay_ms": True}, "popup_delay_ms"),
        ({"popups": "yes"}, "popups"),
        ({"sessions": frozenset({""})}, "session"),
        ({"sessions": "abc"}, "sessions must be a set"),
        ({"drift": frozenset({"prompt", "nav"})}, "unknown drift keys ['nav']"),
    ],
)
def test_invalid_settings_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ReplicaConfig(**changes)


def test_every_option_has_a_flag() -> None:
    argv = "--port 8000 --api-port 8001 --session a b --first-token-ms 5 --token-ms 6 --quota-after 2"
    argv += " --no-sampling-models replica-pro,replica-lite --permission-denied replica-lite --no-popups"
    argv += " --popup-delay-ms 50 --default-model replica-pro"
    args = parse_args([*argv.split(), "--thinking-models", "", "--drift", f"prompt, {next(iter(DRIFTS))}"])
    config = build_config(args)
    assert (args.port, args.api_port, args.ca_file) == (8000, 8001, None)
    assert config == ReplicaConfig(
        sessions=frozenset({"a", "b"}),
        first_token_ms=5,
        token_ms=6,
        quota_after=2,
        default_model="replica-pro",
        thinking_models=frozenset(),
        no_sampling_models=frozenset({"replica-pro", "replica-lite"}),
        permission_denied=frozenset({"replica-lite"}),
        popups=False,
        popup_delay_ms=50,
        drift=frozenset({"prompt", next(iter(DRIFTS))}),
    )


def test_a_model_list_of_ones_own_drops_defaults_that_name_other_models() -> None:
    config = build_config(parse_args(["--port", "1", "--model", "alpha", "--model", "replica-pro"]))
    assert config.models == ("alpha", "replica-pro")
    assert config.default_model == "alpha"
    assert (config.thinking_models, config.no_sampling_models) == (frozenset({"replica-pro"}), frozenset())
    assert (
        build_config(parse_args(["--port", "1", "--model", "replica-flash"])).default_model == "replica-flash"
    )
