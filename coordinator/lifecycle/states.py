"""The states of a supervised child, and which moves between them are allowed.

Data only: no imports from the rest of the package, so every module can name a state.
"""

from __future__ import annotations

import enum


class ChildState(enum.StrEnum):
    STARTING = "starting"  # process spawned, /health not ready yet
    READY = "ready"  # idle, can take a request
    BUSY = "busy"  # holds exactly one request
    COOLDOWN = "cooldown"  # alive but kept out of scheduling for a while
    DRAINING = "draining"  # finishing its request, then it stops
    BACKOFF = "backoff"  # exited or never became ready; waits to start again
    FATAL = "fatal"  # gave up: too many failed starts, or a configuration error
    AUTH_EXPIRED = "auth_expired"  # the profile is logged out; waits for a new file
    STOPPED = "stopped"


# States in which the child's process is expected to be running.
ALIVE = frozenset(
    {ChildState.STARTING, ChildState.READY, ChildState.BUSY, ChildState.COOLDOWN, ChildState.DRAINING}
)
# States that count towards "the coordinator can serve" (/ready).
SERVING = frozenset({ChildState.READY, ChildState.BUSY})
# States from which an operator's restart starts the process again at once.
RESTARTABLE = frozenset({ChildState.BACKOFF, ChildState.FATAL, ChildState.AUTH_EXPIRED, ChildState.STOPPED})

_S = ChildState
TRANSITIONS: dict[ChildState, frozenset[ChildState]] = {
    _S.STARTING: frozenset({_S.READY, _S.BACKOFF, _S.FATAL, _S.AUTH_EXPIRED, _S.DRAINING, _S.COOLDOWN}),
    _S.READY: frozenset({_S.BUSY, _S.COOLDOWN, _S.DRAINING, _S.BACKOFF, _S.FATAL, _S.AUTH_EXPIRED}),
    _S.BUSY: frozenset({_S.READY, _S.COOLDOWN, _S.DRAINING, _S.BACKOFF, _S.FATAL, _S.AUTH_EXPIRED}),
    _S.COOLDOWN: frozenset({_S.READY, _S.DRAINING, _S.BACKOFF, _S.FATAL, _S.AUTH_EXPIRED}),
    _S.DRAINING: frozenset({_S.STOPPED, _S.STARTING}),
    _S.BACKOFF: frozenset({_S.STARTING, _S.FATAL, _S.STOPPED}),
    _S.FATAL: frozenset({_S.STARTING, _S.STOPPED}),
    _S.AUTH_EXPIRED: frozenset({_S.STARTING, _S.STOPPED}),
    # → auth_expired: at startup, for a profile an earlier run found logged out (cooldowns.json).
    _S.STOPPED: frozenset({_S.STARTING, _S.AUTH_EXPIRED}),
}


class InvalidTransition(RuntimeError):
    pass
