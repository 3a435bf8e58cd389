"""Scheduling: which child serves which request, and the queue of those that wait.

A child holds one request at a time. A request goes to an idle ready child that offers
its model and is not out of quota for it (quota is per account and per model: a child
out of quota for one model serves the others): the one that has used the least of its
day's quota for the model (`coordinator.ledger.quota`), round-robin among equals, so the
accounts run out together rather than one after another; when there is
none it waits in a bounded queue of priority lanes (`coordinator.serving.lanes`: strict
priority between lanes, FIFO within one, a bound on how long one is passed over), unless
every child that offers the model is out of quota for it (then `quota_exhausted` at
once, with the soonest reset as Retry-After).
Releasing a child records how the request went: failures in a row eject the child for a
cooldown that doubles with each ejection; a rate limit cools the whole child; a refusal
by the site (permission denied) cools it for a while that doubles with each in a row.
The children are the roster's (`coordinator.lifecycle.roster`); the pool hears of their
state changes from it.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from coordinator.ledger.quota import QuotaTally
from coordinator.lifecycle.child import Child
from coordinator.lifecycle.roster import Roster
from coordinator.lifecycle.states import ACCOUNT_COOLDOWNS, ChildState, CooldownReason
from coordinator.protocol.openai import OpenAIErrorKind
from coordinator.serving.lanes import Lane, Lanes

log = structlog.get_logger("coordinator.serving.pool")

# States whose child serves now or soon: a request may wait for them.
_WILL_SERVE = frozenset(
    {ChildState.STARTING, ChildState.READY, ChildState.BUSY, ChildState.BACKOFF, ChildState.DRAINING}
)
# Cooldowns that a health check ends, soon: a request may wait for them too.
_UNTIL_HEALTHY = frozenset({CooldownReason.UNREACHABLE, CooldownReason.STRAY})
# The longest a child refused by the site (permission denied) is kept out.
PERMISSION_COOLDOWN_MAX = 3600.0
# States whose child may serve again without anyone's intervention.
_RECOVERABLE = frozenset(
    {ChildState.STARTING, ChildState.READY, ChildState.BUSY, ChildState.COOLDOWN, ChildState.BACKOFF}
)


class Outcome(enum.Enum):
    SERVED = "served"
    FAILED = "failed"  # the child's fault: counts towards ejection
    UNREACHABLE = "unreachable"  # refused or dropped: the process died or hung, the supervisor's business
    NEUTRAL = "neutral"  # cancelled, client gone, client error
    BUSY = "busy"  # the child says it serves another request: out until its /health says it is idle
    QUOTA = "quota"  # out of quota: for the model named on release, else the whole account
    RATE_LIMITED = "rate_limited"  # the whole account, for a short while
    PERMISSION_DENIED = "permission_denied"  # the site refused the request itself
    AUTH_EXPIRED = "auth_expired"


class PoolError(OpenAIErrorKind):
    """Why a request cannot get a child; `retry_after` in seconds where waiting helps.

    Each kind carries the status and code the client gets."""

    status, code = 503, "unavailable"


class QueueFull(PoolError):
    status, code = 429, "queue_full"


class QueueTimeout(PoolError):
    status, code = 503, "queue_timeout"


class UnknownModel(PoolError):
    status, code = 404, "model_not_found"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.param = "model"


class PoolClosed(PoolError):
    status, code = 503, "shutting_down"


class RequestCancelled(PoolError):
    status, code = 499, "request_cancelled"


class AllCoolingDown(PoolError):
    """Every child that could serve is out of quota (or rate-limited) for a while."""

    status, code = 429, "quota_exhausted"

    def __init__(self, message: str, *, model: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.model = model
        self.param = "model" if model is not None else None


class NoChildAvailable(PoolError):
    """No child can serve now, nor will without an operator (or a cooldown after failures)."""

    status, code = 503, "no_child_available"


@dataclass(eq=False)
class Waiter:
    request_id: str
    model: str | None
    avoid: frozenset[str]
    lane: Lane = Lane.NORMAL
    enqueued: float = 0.0  # the pool's clock when it began to wait
    future: asyncio.Future[Child] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Pool:
    def __init__(
        self,
        roster: Roster,
        *,
        max_queue: int,
        queue_timeout: float,
        eject_after: int,
        eject_cooldown: float,
        eject_cooldown_max: float,
        clock: Callable[[], float] = time.monotonic,
        on_queue_wait: Callable[[float], None] | None = None,
        service_estimate: float = 30.0,
        permission_cooldown: float = 60.0,
        max_passed_over: float = 30.0,
        quota: QuotaTally | None = None,
    ) -> None:
        self.roster = roster
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.eject_after = eject_after
        self.eject_cooldown = eject_cooldown
        self.eject_cooldown_max = eject_cooldown_max
        self.permission_cooldown = permission_cooldown
        self.clock = clock
        self.on_queue_wait = on_queue_wait or (lambda seconds: None)
        self.waiters: Lanes[Waiter] = Lanes(max_passed_over)
        self.active: dict[str, Child] = {}  # request id → the child serving it
        self.closed: str | None = None
        self._next = 0
        # Seconds an answer takes, for Retry-After: until one is timed, a guess on the long
        # side (a browser answers in seconds to tens of seconds; a client told 1 s comes back
        # too soon), then the moving average of what was measured.
        self._service_seconds = service_estimate
        self._timed = False
        self._started: dict[str, float] = {}
        # The quota day's use per profile and model: ranks the children, counts quota hits.
        self.quota = quota
        self._asked: dict[str, str | None] = {}  # request id → the model it asked for
        roster.subscribe(self.on_change)

    @property
    def children(self) -> list[Child]:
        return list(self.roster)

    # -- the listener a Child calls on every state change -------------------------------

    def on_change(self, child: Child, old: ChildState, new: ChildState) -> None:
        if new is ChildState.READY:
            self._dispatch()
            if old is not ChildState.BUSY:
                # A child's models are learnt as it comes (back) into service, not as it
                # finishes a request: the waiters are looked over then, not per request.
                self._refuse_unknown_models()

    # -- acquiring and releasing --------------------------------------------------------

    async def acquire(
        self,
        request_id: str,
        model: str | None,
        avoid: frozenset[str] = frozenset(),
        lane: Lane = Lane.NORMAL,
    ) -> Child:
        """A child reserved for `request_id`; waits in `lane` of the queue when none is free."""
        if self.closed is not None:
            raise PoolClosed(self.closed, retry_after=5)
        if not self.waiters:
            # A child picked here is ready and offers the model with quota left, so the
            # checks below would pass: they are made only for a request that must wait.
            child = self._pick(model, avoid)
            if child is not None:
                self._assign(child, request_id, model)
                self.on_queue_wait(0.0)
                return child
        self._check_model(model)
        self._check_serviceable(model)
        if len(self.waiters) >= self.max_queue:
            raise QueueFull(
                f"all children are busy and the wait queue is full ({self.max_queue} waiting); retry later",
                retry_after=self.retry_after(),
            )
        enqueued = self.clock()
        waiter = Waiter(request_id, model, avoid, lane, enqueued)
        self.waiters.append(waiter)
        # Those waiting may all be for models no free child serves while this one's is free:
        # it need not wait for the next child to come free to find out.
        self._dispatch()
        try:
            async with asyncio.timeout(self.queue_timeout):
                child = await asyncio.shield(waiter.future)
            self.on_queue_wait(self.clock() - enqueued)
            return child
        except TimeoutError:
            raise QueueTimeout(
                f"no child became free within {self.queue_timeout:g}s; retry later or add profiles",
                retry_after=self.retry_after(),
            ) from None
        except BaseException:
            # A child handed over in the same instant as a timeout or a cancel must go back.
            if waiter.future.done() and not waiter.future.cancelled() and waiter.future.exception() is None:
                self.release(waiter.future.result(), Outcome.NEUTRAL)
            raise
        finally:
            if not waiter.future.done():
                waiter.future.cancel()
            if waiter in self.waiters:
                self.waiters.remove(waiter)

    def release(
        self,
        child: Child,
        outcome: Outcome,
        *,
        cooldown: float | None = None,
        reason: str = "",
        model: str | None = None,
    ) -> None:
        """Give `child` back after a request that ended as `outcome`.

        `cooldown`: seconds the child said to wait (Retry-After); `model`: the model a
        QUOTA outcome is about (None: the whole account)."""
        request_id = child.release()
        if request_id is not None:
            self.active.pop(request_id, None)
            started = self._started.pop(request_id, None)
            asked = self._asked.pop(request_id, None)
        else:
            started = asked = None
        if outcome is Outcome.QUOTA and self.quota is not None:
            # The model the child named; for a whole account's quota, the one asked for.
            hit = model or child.model_for(asked)
            if hit is not None:
                self.quota.hit(child.id, hit)
        if outcome is Outcome.SERVED:
            child.served += 1
            child.errors_in_row = 0
            child.ejections = 0
            child.denials = 0
            if started is not None:
                seconds = self.clock() - started
                average = 0.8 * self._service_seconds + 0.2 * seconds if self._timed else seconds
                self._service_seconds, self._timed = average, True
        elif outcome is Outcome.FAILED:
            child.errors_in_row += 1
        if outcome is Outcome.QUOTA and model is not None:
            # The account's, not the state's: noted even when the child is draining.
            seconds = cooldown or self.eject_cooldown
            child.cool_model(model, self.clock() + seconds, reason or f"child reports {model} out of quota")
            self._refuse_exhausted(model)
        if child.state is not ChildState.BUSY:
            return  # draining, or its process exited: the supervisor owns it now
        if outcome is Outcome.AUTH_EXPIRED:
            child.log_out(reason or "the child reports it", "child reports the profile is logged out")
        elif outcome is Outcome.QUOTA and model is None:
            until = self.clock() + (cooldown or self.eject_cooldown)
            child.cool_down(CooldownReason.QUOTA, until, reason or "child reports quota exhausted")
        elif outcome is Outcome.RATE_LIMITED:
            until = self.clock() + (cooldown or self.eject_cooldown)
            child.cool_down(CooldownReason.RATE_LIMITED, until, reason or "child reports a rate limit")
        elif outcome is Outcome.PERMISSION_DENIED:
            seconds = min(PERMISSION_COOLDOWN_MAX, self.permission_cooldown * 2**child.denials)
            child.denials += 1
            child.cool_down(
                CooldownReason.PERMISSION_DENIED,
                self.clock() + seconds,
                f"{reason or 'the site refused the request'}; out for {seconds:g}s "
                f"({child.denials} refusal(s) in a row)",
            )
        elif outcome is Outcome.UNREACHABLE:
            # Likely dead or hung: out until its exit is seen or a health check says it serves.
            child.cool_down(CooldownReason.UNREACHABLE, None, reason or "child unreachable")
        elif outcome is Outcome.BUSY:
            # Ready again at once, it would be picked again and refuse again; the supervisor
            # sees what it is busy with, and asks it to stop.
            child.cool_down(CooldownReason.STRAY, None, reason or "child answered child_busy")
        elif outcome is Outcome.FAILED and child.errors_in_row >= self.eject_after:
            self._eject(child)
        else:
            child.ready(f"request {request_id} {outcome.value}")

    def _eject(self, child: Child) -> None:
        seconds = min(self.eject_cooldown_max, self.eject_cooldown * 2**child.ejections)
        child.ejections += 1
        child.errors_in_row = 0
        child.cool_down(
            CooldownReason.EJECTED,
            self.clock() + seconds,
            f"ejected for {seconds:g}s after {self.eject_after} failures in a row",
        )

    def charge(self, child: Child) -> None:
        """Count a failure against `child` after the fact (its request went on elsewhere meanwhile)."""
        child.errors_in_row += 1
        if child.state is ChildState.READY and child.errors_in_row >= self.eject_after:
            self._eject(child)

    # -- cancel and shutdown ------------------------------------------------------------

    def locate(self, request_id: str) -> Child | Waiter | None:
        """The child serving `request_id`, or its place in the queue."""
        if request_id in self.active:
            return self.active[request_id]
        # Asked of every chat request (is its id in use?): the queue is searched as it lies,
        # not sorted into arrival order first. An id waits at most once, so the answer is the same.
        return next((w for w in self.waiters.unordered() if w.request_id == request_id), None)

    def cancel_waiting(self, waiter: Waiter) -> None:
        if not waiter.future.done():
            waiter.future.set_exception(
                RequestCancelled(f"request {waiter.request_id} was cancelled while it waited for a child")
            )

    def close(self, reason: str) -> None:
        """Refuse new requests and fail every waiting one."""
        self.closed = reason
        for waiter in list(self.waiters):
            if not waiter.future.done():
                waiter.future.set_exception(PoolClosed(reason, retry_after=5))

    # -- introspection ------------------------------------------------------------------

    def retry_after(self) -> int:
        serving = sum(1 for child in self.children if child.state in (ChildState.READY, ChildState.BUSY))
        estimate = self._service_seconds * (len(self.waiters) + 1) / max(1, serving)
        return max(1, min(300, math.ceil(estimate)))

    def capable(self, model: str | None) -> int:
        """How many children serve `model` (the default model: any child), whether free now
        or not: those that may serve again without an operator. A child whose models are
        not known yet counts, as a request may wait for it."""
        return sum(
            1
            for child in self.children
            if child.state in _RECOVERABLE and (model is None or not child.models or model in child.models)
        )

    def models(self) -> list[str]:
        seen: dict[str, None] = {}
        for child in self.children:
            if child.state in _RECOVERABLE:
                seen.update(dict.fromkeys(child.models))
        return list(seen)

    # -- internals ----------------------------------------------------------------------

    def _check_model(self, model: str | None) -> None:
        if model is None:
            return
        candidates = [child for child in self.children if child.state in _RECOVERABLE]
        if any(model in child.models for child in candidates):
            return
        if candidates and all(child.models for child in candidates):
            offered = ", ".join(sorted(self.models())) or "none"
            raise UnknownModel(
                f"the model {model!r} is not offered by any child; available models: {offered}"
            )

    def _check_serviceable(self, model: str | None) -> None:
        """Fail at once, rather than after the queue timeout, when waiting cannot help soon."""
        candidates = [c for c in self.children if model is None or not c.models or model in c.models]
        now = self.clock()
        # Seconds each candidate is out of quota (for this model, or as a whole account).
        exhausted = {c.id: left for c in candidates if (left := self._quota_left(c, model, now)) > 0}
        if any(
            c.id not in exhausted
            and (
                c.state in _WILL_SERVE
                or (c.state is ChildState.COOLDOWN and c.cooldown_reason in _UNTIL_HEALTHY)
            )
            for c in candidates
        ):
            return
        cooling = [c for c in candidates if c.state is ChildState.COOLDOWN or c.id in exhausted]
        waits = [exhausted.get(c.id) or (c.cooldown_until or now + 60) - now for c in cooling]
        retry_after = max(1, math.ceil(min(waits))) if waits else 30
        if cooling and all(c.id in exhausted for c in cooling):
            what = f"the model {model!r}" if model is not None else "the default model"
            raise AllCoolingDown(
                f"every profile that serves {what} is out of quota or rate-limited; "
                f"retry in {retry_after}s, use another model, or add profiles",
                model=model,
                retry_after=retry_after,
            )
        states = ", ".join(_describe(c) for c in candidates) or "no children"
        raise NoChildAvailable(
            f"no child can serve now ({states}); see GET /admin/children", retry_after=retry_after
        )

    @staticmethod
    def _quota_left(child: Child, model: str | None, now: float) -> float:
        """Seconds `child` cannot serve `model` for lack of quota: the model's, or the account's."""
        account = 0.0
        if child.state is ChildState.COOLDOWN and child.cooldown_reason in ACCOUNT_COOLDOWNS:
            # No end known: the child says when it serves again; a guess for Retry-After.
            account = child.cooldown_until - now if child.cooldown_until is not None else 60.0
        return max(account, child.model_cooldown_left(model, now))

    def _refuse_exhausted(self, model: str) -> None:
        """Fail the waiters for `model` now that no child can serve it before its quota resets."""
        for waiter in list(self.waiters):
            if waiter.future.done() or waiter.model != model:
                continue
            try:
                self._check_serviceable(model)
            except PoolError as exc:
                waiter.future.set_exception(exc)

    def _pick(self, model: str | None, avoid: frozenset[str]) -> Child | None:
        """The free child for `model` with the least of its quota used; the first in
        round-robin order among equals."""
        children = self.children
        count = len(children)
        now = self.clock()
        fallback: Child | None = None
        best: Child | None = None
        best_index = 0
        best_share: tuple[bool, float] | None = None
        rank = self.quota.ranking() if self.quota is not None else None
        for offset in range(count):
            index = (self._next + offset) % count
            child = children[index]
            if child.state is not ChildState.READY or (model is not None and model not in child.models):
                continue
            if child.model_cooldown_left(model, now) > 0:
                continue
            if child.id not in avoid:
                if rank is None:
                    best, best_index = child, index
                    break
                share = rank(child.id, child.model_for(model))
                if best_share is None or share < best_share:
                    best, best_index, best_share = child, index, share
                continue
            fallback = fallback or child
        if best is not None:
            self._next = best_index + 1
            return best
        # A retry goes back to a child it already tried only when no other could ever take it.
        if fallback is not None and not any(
            c.id not in avoid
            and c.state in _RECOVERABLE
            and (model is None or model in c.models)
            and c.model_cooldown_left(model, now) == 0
            for c in children
        ):
            return fallback
        return None

    def _refuse_unknown_models(self) -> None:
        """Fail the waiters for a model that no child offers, now that the children have said
        what they offer: they would wait for the queue timeout, for nothing."""
        for waiter in list(self.waiters):
            if waiter.future.done():
                continue
            try:
                self._check_model(waiter.model)
            except UnknownModel as exc:
                waiter.future.set_exception(exc)

    def _assign(self, child: Child, request_id: str, model: str | None) -> None:
        self.active[request_id] = child
        self._started[request_id] = self.clock()
        self._asked[request_id] = model
        child.take(request_id)

    def _dispatch(self) -> None:
        if not self.waiters:
            return
        # Only a ready child can be picked: once none is left, the rest of the queue cannot
        # get one either, and is not looked over (with a deep queue, that was most of the
        # pool's work per request).
        free = sum(1 for child in self.roster if child.state is ChildState.READY)
        if not free:
            return
        for waiter in self.waiters.in_order(self.clock()):
            if waiter.future.done():
                continue
            child = self._pick(waiter.model, waiter.avoid)
            if child is None:
                continue
            self.waiters.remove(waiter)
            self._assign(child, waiter.request_id, waiter.model)
            waiter.future.set_result(child)
            free -= 1
            if not free:
                return


def _describe(child: Child) -> str:
    if child.state is ChildState.COOLDOWN and child.cooldown_reason is not None:
        return f"{child.id}: cooldown ({child.cooldown_reason.value})"
    return f"{child.id}: {child.state.value}"
