"""The replica's settings: one frozen object that the app factory, the CLI and the
coordinator's `--demo` all build the replica from, checked once when it is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from child.replica.drift import DRIFTS

# The cookie that stands in for a Google login; a browser profile holds it as storage state.
SESSION_COOKIE: Final = "replica_session"


def display_name(model: str) -> str:
    """ "replica-pro" -> "Replica Pro": the kind of name AI Studio shows beside the id."""
    return " ".join(part.capitalize() for part in model.replace("_", "-").split("-"))


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    """How the replica behaves.

    sessions: session cookie values accepted from the start (the demo's profiles hold them);
        the login form adds more while the replica runs.
    first_token_ms, token_ms: the answer endpoint sends its first frame this long after a
        request, then one frame (one token) every `token_ms`.
    quota_after: a session's runs on one model after this many are refused with the quota
        error (429, code 8); 0 means never.
    models: the model ids ListModels offers, in its order.
    default_model: the page's model when neither `?model=` nor the preference names an
        offered one; on purpose not the first of `models`, as on AI Studio.
    thinking_models: models that stream thoughts before the answer.
    no_sampling_models: models that offer neither temperature nor top-p (no such fields).
    permission_denied: models whose every request is refused (403, code 7).
    popups: the cookie bar, preference vote and survey appear `popup_delay_ms` after load.
    drift: keys of `child.replica.drift.DRIFTS` whose elements the page renames.
    upload_ms: how long a file's chip stays "uploading" after the page has read it (the
        real page's upload round trip); Run is disabled meanwhile.
    """

    sessions: frozenset[str] = frozenset()
    first_token_ms: int = 200
    token_ms: int = 30
    quota_after: int = 0
    models: tuple[str, ...] = ("replica-pro", "replica-flash", "replica-lite")
    default_model: str = "replica-flash"
    thinking_models: frozenset[str] = frozenset({"replica-pro"})
    no_sampling_models: frozenset[str] = frozenset({"replica-lite"})
    permission_denied: frozenset[str] = frozenset()
    popups: bool = True
    popup_delay_ms: int = 300
    drift: frozenset[str] = frozenset()
    upload_ms: int = 300

    def __post_init__(self) -> None:
        # Callers (the CLI, tests) hand over lists and sets; keep the frozen kinds.
        for name in ("sessions", "thinking_models", "no_sampling_models", "permission_denied", "drift"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(item, str) for item in value):
                raise ValueError(f"{name} must be a set of strings")
            object.__setattr__(self, name, frozenset(value))
        object.__setattr__(self, "models", tuple(self.models))
        self._check()

    def _check(self) -> None:
        if not self.models:
            raise ValueError("the replica needs at least one model")
        if any(not model or "/" in model or model.strip() != model for model in self.models):
            raise ValueError("model ids are bare (no 'models/' prefix), not empty, with no spaces around")
        if len(set(self.models)) != len(self.models):
            raise ValueError("model ids must be distinct")
        if self.default_model not in self.models:
            raise ValueError(f"default_model {self.default_model!r} is not one of the models")
        for name in ("thinking_models", "no_sampling_models", "permission_denied"):
            unknown = getattr(self, name) - set(self.models)
            if unknown:
                raise ValueError(f"{name} names models that are not offered: {sorted(unknown)}")
        numbers = {
            "first_token_ms": self.first_token_ms,
            "token_ms": self.token_ms,
            "quota_after": self.quota_after,
            "popup_delay_ms": self.popup_delay_ms,
            "upload_ms": self.upload_ms,
        }
        for name, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number, not negative")
        if not isinstance(self.popups, bool):
            raise ValueError("popups must be true or false")
        if "" in self.sessions:
            raise ValueError("a session value must not be empty")
        unknown_drift = self.drift - set(DRIFTS)
        if unknown_drift:
            raise ValueError(f"unknown drift keys {sorted(unknown_drift)}; known: {sorted(DRIFTS)}")
