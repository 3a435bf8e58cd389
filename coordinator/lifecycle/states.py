"""The states of a supervised child, why one cools down, and which moves are allowed.

Data only: no imports from the rest of the package, so every module can name a state.
"""

from __future__ import annotations

import enum


class ChildState(enum.StrEnum):
    STARTING = "starting"  # being spawned, or spawned and /health not ready yet
    READY = "ready"  # idle, can take a request
    BUSY = "busy"  # holds exactly one request
    COOLDOWN = "cooldown"  # alive but kept out of scheduling for a while
    DRAINING = "draining"  # finishing its request, then it stops
    STOPPING = "stopping"  # its process group is being stopped (SIGTERM, then SIGKILL)
    BACKOFF = "backoff"  # exited or never became ready; waits to start again
    FATAL = "fatal"  # gave up: too many failed starts, or a configuration error
    AUTH_EXPIRED = "auth_expired"  # the profile is logged out; waits for a new file
    # Valid but not running: --max-browsers children run already; it takes the place of one
    # that is logged out, fatal or cooling down long (Child.spare_reason says why it waits).
    SPARE = "spare"
    STOPPED = "stopped"


class CooldownReason(enum.StrEnum):
    # The account is out of quota, for no model in particular (the child did not say which);
    # outlives the process. A quota for one model is not a state (Child.model_cooldowns).
    QUOTA = "quota"
    RATE_LIMITED = "rate_limited"  # the whole account, for minutes; outlives the process too
    # The site refused the request (page proof refused, or account flagged): out for a
    # while that doubles with each refusal in a row; the process's own, not kept across runs.
    PERMISSION_DENIED = "permission_denied"
    EJECTED = "ejected"  # failures in a row; the process's own, a fresh one starts clean
    UNREACHABLE = "unreachable"  # refused or dropped a request: dead or hung, until told otherwise
    # Busy with a request the pool did not give it: out until its /health says it is idle.
    STRAY = "stray"


# Cooldowns that are the account's, not the process's: kept across restarts of the child
# and of the coordinator (cooldowns.json).
ACCOUNT_COOLDOWNS = frozenset({CooldownReason.QUOTA, CooldownReason.RATE_LIMITED})

# States in which the child's process is expected to be running and may serve again.
ALIVE = frozenset(
    {ChildState.STARTING, ChildState.READY, ChildState.BUSY, ChildState.COOLDOWN, ChildState.DRAINING}
)
# States that count towards "the coordinator can serve" (/ready).
SERVING = frozenset({ChildState.READY, ChildState.BUSY})
# States from which an operator's restart starts the process again at once.
RESTARTABLE = frozenset({ChildState.BACKOFF, ChildState.FATAL, ChildState.AUTH_EXPIRED, ChildState.STOPPED})
# States a stop may end in: what the child does once its process is gone.
AFTER_STOP = frozenset({ChildState.STOPPED, ChildState.STARTING, ChildState.AUTH_EXPIRED, ChildState.SPARE})
# States that hold one of the --max-browsers slots: a process runs, or will again by itself.
OCCUPYING = frozenset({*ALIVE, ChildState.STOPPING, ChildState.BACKOFF})

_S = ChildState
# → auth_expired from a live state: only when its process is gone already (else via stopping).
TRANSITIONS: dict[ChildState, frozenset[ChildState]] = {
    _S.STARTING: frozenset(
        {_S.READY, _S.BACKOFF, _S.FATAL, _S.DRAINING, _S.STOPPING, _S.COOLDOWN, _S.AUTH_EXPIRED}
    ),
    _S.READY: frozenset(
        {_S.BUSY, _S.COOLDOWN, _S.DRAINING, _S.STOPPING, _S.BACKOFF, _S.FATAL, _S.AUTH_EXPIRED}
    ),
    _S.BUSY: frozenset(
        {_S.READY, _S.COOLDOWN, _S.DRAINING, _S.STOPPING, _S.BACKOFF, _S.FATAL, _S.AUTH_EXPIRED}
    ),
    _S.COOLDOWN: frozenset({_S.READY, _S.DRAINING, _S.STOPPING, _S.BACKOFF, _S.FATAL, _S.AUTH_EXPIRED}),
    # → stopped, starting, auth_expired: the process exited on its own while it drained.
    _S.DRAINING: frozenset({_S.STOPPING, *AFTER_STOP}),
    _S.STOPPING: AFTER_STOP,
    _S.BACKOFF: frozenset({_S.STARTING, _S.FATAL, _S.STOPPED}),
    # → spare: a start found every --max-browsers slot taken.
    _S.FATAL: frozenset({_S.STARTING, _S.STOPPED, _S.SPARE}),
    _S.AUTH_EXPIRED: frozenset({_S.STARTING, _S.STOPPED, _S.SPARE}),
    # → auth_expired: at startup, for a profile an earlier run found logged out (cooldowns.json).
    _S.STOPPED: frozenset({_S.STARTING, _S.AUTH_EXPIRED, _S.SPARE}),
    _S.SPARE: frozenset({_S.STARTING, _S.STOPPED}),
}


class InvalidTransition(RuntimeError):
    pass
