"""The replica's settings: one frozen object that the app factory, the CLI and the
coordinator's `--demo` all build the replica from, checked once when it is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from child.replica.drift import DRIFTS
from child.replica.settings_panel import LEVEL_CODES

# The cookie that stands in for a Google login; a browser profile holds it as storage state.
SESSION_COOKIE: Final = "replica_session"
# As AI Studio's: flash Minimal/Low/Medium/High, pro Low/High, lite none.
DEFAULT_LEVELS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {"replica-pro": ("Low", "High"), "replica-flash": ("Minimal", "Low", "Medium", "High")}
)
DEFAULT_GROUNDING: Final = frozenset({"replica-pro", "replica-flash"})


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
    thinking_models: models that stream thoughts before the answer by default.
    thinking_levels: model -> the levels its "Thinking Level" control offers, lowest first
        (names of `settings_panel.LEVEL_CODES`); a model not named has no such control. Its
        default is its highest level if it is a thinking model, else its lowest (thinking
        off: "Minimal" thinks not at all).
    grounding_models: models that offer the Google Search and URL context tools.
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
    # None: the defaults (DEFAULT_LEVELS, DEFAULT_GROUNDING), for those of `models` they name.
    thinking_levels: Mapping[str, tuple[str, ...]] = None  # type: ignore[assignment]
    grounding_models: frozenset[str] = None  # type: ignore[assignment]
    permission_denied: frozenset[str] = frozenset()
    popups: bool = True
    popup_delay_ms: int = 300
    drift: frozenset[str] = frozenset()
    upload_ms: int = 300

    def __post_init__(self) -> None:
        offered = set(self.models)
        if self.grounding_models is None:
            object.__setattr__(self, "grounding_models", DEFAULT_GROUNDING & offered)
        if self.thinking_levels is None:
            defaults = {model: levels for model, levels in DEFAULT_LEVELS.items() if model in offered}
            object.__setattr__(self, "thinking_levels", defaults)
        # Callers (the CLI, tests) hand over lists and sets; keep the frozen kinds.
        names = (
            "sessions",
            "thinking_models",
            "no_sampling_models",
            "grounding_models",
            "permission_denied",
            "drift",
        )
        for name in names:
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(item, str) for item in value):
                raise ValueError(f"{name} must be a set of strings")
            object.__setattr__(self, name, frozenset(value))
        object.__setattr__(self, "models", tuple(self.models))
        levels = {str(model): tuple(names) for model, names in dict(self.thinking_levels).items()}
        object.__setattr__(self, "thinking_levels", MappingProxyType(levels))
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
        for name in ("thinking_models", "no_sampling_models", "grounding_models", "permission_denied"):
            unknown = getattr(self, name) - set(self.models)
            if unknown:
                raise ValueError(f"{name} names models that are not offered: {sorted(unknown)}")
        self._check_levels()
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

    def _check_levels(self) -> None:
        unknown = set(self.thinking_levels) - set(self.models)
        if unknown:
            raise ValueError(f"thinking_levels names models that are not offered: {sorted(unknown)}")
        for model, levels in self.thinking_levels.items():
            if not levels or any(level not in LEVEL_CODES for level in levels):
                raise ValueError(f"thinking_levels[{model!r}] must be some of {list(LEVEL_CODES)}")
            if list(levels) != sorted(set(levels), key=list(LEVEL_CODES).index):
                raise ValueError(f"thinking_levels[{model!r}] must be distinct, lowest first")

    def default_level(self, model: str) -> str | None:
        """The level the page shows for `model` until the user picks one; None: no control."""
        levels = self.thinking_levels.get(model)
        if not levels:
            return None
        return levels[-1] if model in self.thinking_models else levels[0]
