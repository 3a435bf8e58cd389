"""The replica's settings: one frozen object that the app factory, the CLI and the
coordinator's `--demo` all build the replica from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# The cookie that stands in for a Google login; a browser profile holds it as storage state.
SESSION_COOKIE: Final = "replica_session"


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    """How the replica behaves.

    sessions: session cookie values accepted from the start (the demo's profiles hold them);
        the login form adds more while the replica runs.
    first_token_ms, token_ms: the page renders the first token this long after the run is
        accepted, then one token every `token_ms`.
    quota_after: a session's runs after this many end in the quota toast; 0 means never.
    models: the model ids offered; the first is the page's default.
    """

    sessions: frozenset[str] = frozenset()
    first_token_ms: int = 200
    token_ms: int = 30
    quota_after: int = 0
    models: tuple[str, ...] = ("replica-pro", "replica-flash")

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("the replica needs at least one model")
        if min(self.first_token_ms, self.token_ms, self.quota_after) < 0:
            raise ValueError("first_token_ms, token_ms and quota_after must not be negative")
        if any(not model or "/" in model for model in self.models):
            raise ValueError("model ids are bare (no 'models/' prefix) and not empty")
