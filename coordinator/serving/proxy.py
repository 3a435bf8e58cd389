"""Forwarding a chat request to a child: retries before the first byte, a relay after it.

Until the first byte of an answer is in hand, any failure of a child (refused, died,
5xx, busy, timed out) sends the request to another child, unless it fails the same way
twice: then the request is at fault, and its client gets a 502. A child's other 4xx is
the request's fault too: the client's answer, never retried.

What the site refuses is the account's, not the request's: a quota (for the model the
child names) or a rate limit sends the request on without using up an attempt, since
each child can answer so only once (it is then skipped for that model, or cooled); when
none is left, the pool answers `quota_exhausted`. A permission denied (the site refused
the page's proof, or the account is flagged) cools that child and tries one other; a
second refusal ends the request with 403 `permission_denied`, rather than offering the
same request to every account in turn. After the first byte,
nothing is retried: a stream that breaks ends with an OpenAI error event and no `[DONE]`;
a quota or rate limit that ends a stream (the child's error event names the model and its
`retry_after`) is noted on the child as one before the first byte would be.
Transport errors become reasons in words here, and the client's error is built at the edge.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import structlog

from coordinator.lifecycle.child import Child
from coordinator.protocol import link
from coordinator.protocol import openai as wire
from coordinator.serving.lanes import Lane
from coordinator.serving.metrics import Metrics
from coordinator.serving.pool import Outcome, Pool, RequestCancelled
from coordinator.serving.transport import (
    ChildAnswer,
    ChildLink,
    Stalled,
    TransportError,
    cancel_request,
)
from coordinator.settings import Settings

log = structlog.get_logger("coordinator.serving.proxy")

CANCEL_TIMEOUT = 2.0


class ProxyError(wire.OpenAIError):
    """A request that ends before any answer; the edge turns it into OpenAI's error shape."""


class _ChildFailed(Exception):
    """This child could not answer; another one may.

    `answered`: the status and error code of a failure the child answered in words (a
    5xx), by which the same failure on another child is recognised.
    """

    def __init__(
        self,
        outcome: Outcome,
        reason: str,
        cooldown: float | None = None,
        answered: tuple[int, str | None] | None = None,
        model: str | None = None,
        said: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason
        self.cooldown = cooldown
        self.answered = answered
        self.model = model  # the model a quota is for, as the child names it
        self.said = said  # the child's own message, passed on when the failure is final


@dataclass(slots=True)
class _Answered:
    """The failures children answered (status, code) for one request, and who answered them."""

    failures: list[tuple[tuple[int, str | None], Child]] = field(default_factory=list)
    poison: tuple[int, str | None] | None = None  # the failure that proved to be the request's

    def earlier(self, failure: tuple[int, str | None]) -> Child | None:
        return next((child for seen, child in self.failures if seen == failure), None)

    def add(self, failure: tuple[int, str | None], child: Child) -> None:
        self.failures.append((failure, child))

    def to_charge(self) -> list[Child]:
        return [child for seen, child in self.failures if seen != self.poison]


@dataclass(slots=True)
class Answer:
    """What a child answered, held before anything is sent to the client."""

    child: Child
    status: int
    body: bytes  # the whole body, or the first chunk of a stream
    content_type: str
    stream: ChildAnswer | None = None  # the rest of a stream, still coming
    headers: tuple[tuple[bytes, bytes], ...] = ()  # the child's own, for the client (link.RELAYED_HEADERS)


class Proxy:
    def __init__(
        self, pool: Pool, settings: Settings, transport: ChildLink, token: str, metrics: Metrics
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.transport = transport
        self.token = token
        self.metrics = metrics

    async def open(
        self, chat: wire.ChatRequest, raw: bytes, request_id: str, lane: Lane = Lane.NORMAL
    ) -> Answer:
        """Find a child and get the start of its answer, trying others until one gives it.

        A request that fails the same way twice (same status and code) is taken to be at
        fault itself: its client gets a 502 at once, and those failures count against no
        child, or one such request could eject every child in turn. So the failures that
        children answer are charged to them only once the request's fate is known.
        """
        answered = _Answered()
        try:
            return await self._open(chat, raw, request_id, answered, lane)
        finally:
            for child in answered.to_charge():
                self.pool.charge(child)

    async def _open(
        self, chat: wire.ChatRequest, raw: bytes, request_id: str, answered: _Answered, lane: Lane
    ) -> Answer:
        avoid: set[str] = set()
        denied: list[str] = []
        last = "no child was tried"
        attempt = 0
        # Quota and rate limits use up no attempt, but each child gives at most one of them.
        for _ in range(self.settings.max_attempts + len(self.pool.children)):
            if attempt >= self.settings.max_attempts:
                break
            try:
                child = await self.pool.acquire(request_id, chat.model, frozenset(avoid), lane)
            except RequestCancelled as exc:
                raise ProxyError(499, "request_cancelled", exc.message) from None
            body = raw
            if chat.model is None and (model := child.model_for(None)) is not None:
                # The child's own default may be a model its profile's settings leave out:
                # name the first it may serve (the page's order, so the page's default if allowed).
                body = json.dumps({**chat.body, "model": model}).encode()
            try:
                answer = await self._ask(child, body, chat.stream, request_id)
            except _ChildFailed as failure:
                if failure.answered is None:
                    self.pool.release(
                        child,
                        failure.outcome,
                        cooldown=failure.cooldown,
                        reason=failure.reason,
                        model=failure.model,
                    )
                else:
                    self.pool.release(child, Outcome.NEUTRAL)
                    earlier = answered.earlier(failure.answered)
                    answered.add(failure.answered, child)
                    if earlier is not None:
                        raise self._poison(earlier, child, failure, request_id, answered) from None
                avoid.add(child.id)
                last = f"child {child.id}: {failure.reason}"
                self.metrics.retries.labels(failure.outcome.value).inc()
                if failure.outcome is Outcome.PERMISSION_DENIED:
                    denied.append(child.id)
                    if len(denied) >= 2:
                        raise _refused(denied, request_id) from None
                if failure.outcome not in (Outcome.QUOTA, Outcome.RATE_LIMITED):
                    attempt += 1
                log.warning(
                    "request_retry",
                    request_id=request_id,
                    child=child.id,
                    attempt=attempt,
                    reason=failure.reason,
                )
                continue
            except BaseException:
                # The client left or the server is stopping: stop the page before freeing the child
                # (freed even if the stop is itself cut short).
                try:
                    await self.cancel_on(child, request_id)
                finally:
                    self.pool.release(child, Outcome.NEUTRAL)
                raise
            if answer.stream is None:
                self.pool.release(child, Outcome.SERVED if answer.status == 200 else Outcome.NEUTRAL)
            return answer
        raise ProxyError(
            502,
            "child_failed",
            f"{self.settings.max_attempts} attempts failed before any answer; last: {last}. "
            "Retry the request; if it keeps failing, look at GET /admin/children.",
        )

    @staticmethod
    def _poison(
        earlier: Child, child: Child, failure: _ChildFailed, request_id: str, answered: _Answered
    ) -> ProxyError:
        answered.poison = failure.answered
        log.warning(
            "request_poison", request_id=request_id, children=[earlier.id, child.id], reason=failure.reason
        )
        where = (
            f"children {earlier.id} and {child.id}" if earlier is not child else f"child {child.id}, twice"
        )
        said = f": {failure.said[:500]}" if failure.said else f" ({failure.reason})"
        if failure.answered is not None and failure.answered[1] == SITE_CHANGED:
            # Not the request's fault: every child drives the same site, and it changed.
            advice = "the site's page has changed: run `coordinator check-site`, fix with --site-config."
            return ProxyError(
                502, SITE_CHANGED, f"the request failed the same way on {where}{said}; {advice}"
            )
        return ProxyError(
            502,
            "child_failed",
            f"the request failed the same way on {where}{said}; "
            "the request itself is the likely cause: check it before retrying.",
        )

    async def _ask(self, child: Child, raw: bytes, stream: bool, request_id: str) -> Answer:
        headers = {
            link.TOKEN_HEADER: self.token,
            "X-Request-ID": request_id,
            "Content-Type": "application/json",
        }
        response: ChildAnswer | None = None
        handed_over = False
        try:
            async with asyncio.timeout(self.settings.first_byte_timeout):
                response = await self.transport.request(
                    child.spec.ports.api, "POST", "/v1/chat/completions", headers, raw
                )
                content_type = response.headers.get("content-type", "")
                relayed = tuple(
                    (name.encode(), response.headers[name].encode())
                    for name in link.RELAYED_HEADERS
                    if name in response.headers
                )
                if response.status != 200 or not stream:
                    body = await response.read()
                    self._judge(response.status, response.headers, body)
                    return Answer(child, response.status, body, content_type, headers=relayed)
                first = await response.next_chunk()
                if not first:
                    raise _ChildFailed(Outcome.FAILED, "closed the stream before its first byte")
                handed_over = True
                return Answer(child, 200, first, content_type, response, relayed)
        except TimeoutError:
            raise _ChildFailed(
                Outcome.FAILED, f"no first byte within {self.settings.first_byte_timeout:g}s"
            ) from None
        except TransportError as exc:
            # Not counted towards ejection: a dead or hung process is seen and restarted
            # by the supervisor; ejection is for a live child that answers badly.
            raise _ChildFailed(Outcome.UNREACHABLE, str(exc)) from None
        finally:
            if response is not None and not handed_over:
                response.close()

    @staticmethod
    def _judge(status: int, headers: dict[str, str], body: bytes) -> None:
        """Raise _ChildFailed when another child could answer better; else the answer stands."""
        if status < 400:
            return
        code = _error_code(body)
        if status == 429 and code == "child_busy":
            raise _ChildFailed(
                Outcome.BUSY, "answered child_busy: it serves a request the pool did not give it"
            )
        retry_after = headers.get("retry-after", "")
        cooldown = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else None
        if code == "rate_limited":
            raise _ChildFailed(Outcome.RATE_LIMITED, "the account is rate-limited", cooldown=cooldown)
        if status == 429 or code == "quota_exhausted":
            model = _error_field(body, "model")
            what = f"the model {model!r}" if model else "no model named"
            raise _ChildFailed(
                Outcome.QUOTA, f"quota exhausted ({code}; {what})", cooldown=cooldown, model=model
            )
        if code == "permission_denied":
            raise _ChildFailed(
                Outcome.PERMISSION_DENIED,
                "the site refused the request: permission denied (page proof refused, or account flagged)",
            )
        if code == "auth_expired":
            raise _ChildFailed(Outcome.AUTH_EXPIRED, "the profile is logged out")
        if code == link.INVALID_OUTPUT:
            # The model's answer broke the request's format: the answer stands (a retry is
            # the client's call), and it says nothing of the child's health.
            return
        if status == 403:
            # 403 here means the child does not know our token: it belongs to another run.
            raise _ChildFailed(Outcome.FAILED, f"answered {status} ({code or 'no code'})")
        if status >= 500:
            raise _ChildFailed(
                Outcome.FAILED,
                f"answered {status} ({code or 'no code'})",
                answered=(status, code),
                said=_error_field(body, "message"),
            )
        # Any other 4xx is the request's fault: the client's answer, never retried elsewhere.

    async def relay(self, answer: Answer, request_id: str) -> AsyncGenerator[bytes, None]:
        """The stream, chunk by chunk as the child sends it; releases the child however it ends."""
        stream = answer.stream
        assert stream is not None
        outcome = Outcome.NEUTRAL
        refusal: _ChildFailed | None = None
        tail = answer.body
        try:
            stream.watch_idle(self.settings.idle_timeout)
            yield answer.body
            while True:
                chunk = await stream.next_chunk()
                if not chunk:
                    break
                # Events that arrived together leave together: one write to the client.
                chunk += stream.take_buffered()
                tail = chunk
                yield chunk
            # A quota or rate limit that came after the first byte ends the stream with an
            # error event: the client has it already, and the child's cooldown is noted as
            # it would be before the first byte (for that model only, or the whole account).
            refusal = _late_refusal(tail)
            outcome = Outcome.SERVED if refusal is None else refusal.outcome
        except TransportError as exc:
            # A child that stalls is alive but failing; one whose connection broke is gone.
            outcome = Outcome.FAILED if isinstance(exc, Stalled) else Outcome.UNREACHABLE
            reason = str(exc)
            log.warning("stream_broken", request_id=request_id, child=answer.child.id, reason=reason)
            # Start the error event on a fresh line even if the child stopped mid-event.
            prefix = b"" if tail.endswith(b"\n\n") else b"\n\n"
            yield prefix + wire.sse_error(
                f"child {answer.child.id} failed after the answer had started ({reason}); "
                "the answer is incomplete: retry the request",
                status=502,
                code="child_failed",
            )
        finally:
            stream.close()
            try:
                if outcome is not Outcome.SERVED and refusal is None:  # a refusal ended its answer
                    await self.cancel_on(answer.child, request_id)
            finally:
                # Freed even if the stop is itself cut short (a second cancel of the task).
                if refusal is not None:
                    log.warning(
                        "stream_refused", request_id=request_id, child=answer.child.id, reason=refusal.reason
                    )
                    self.pool.release(
                        answer.child,
                        refusal.outcome,
                        cooldown=refusal.cooldown,
                        reason=f"{refusal.reason}, after the answer had started",
                        model=refusal.model,
                    )
                else:
                    self.pool.release(answer.child, outcome)

    async def cancel_on(self, child: Child, request_id: str) -> bool:
        """Ask a child to stop generating `request_id`; True if it was generating it."""
        return await cancel_request(
            self.transport, child.spec.ports.api, self.token, request_id, CANCEL_TIMEOUT
        )


def _late_refusal(tail: bytes) -> _ChildFailed | None:
    """The quota or rate limit in the error event that ended a stream, if that is how it ended.

    The child puts the Retry-After it could not send as a header in the event (`retry_after`)."""
    last = tail.rstrip().rpartition(b"\n\n")[2].strip()
    if not last.startswith(b"data:") or b'"error"' not in last:
        return None
    body = last[len(b"data:") :].strip()
    code = _error_code(body)
    if code not in ("quota_exhausted", "rate_limited"):
        return None
    seconds = _error_number(body, "retry_after")
    headers = {"retry-after": f"{seconds:g}"} if seconds is not None and seconds > 0 else {}
    try:
        Proxy._judge(429, headers, body)
    except _ChildFailed as failure:
        return failure
    return None


def _error_number(body: bytes, name: str) -> float | None:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    value = error.get(name) if isinstance(error, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _error_code(body: bytes) -> str | None:
    return _error_field(body, "code")


# The child's code for a page that no longer matches its driver (child.site.errors).
SITE_CHANGED = "site_changed"


def _error_field(body: bytes, name: str) -> str | None:
    """A string field of the error object in a child's error body, if there is one."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    value = error.get(name) if isinstance(error, dict) else None
    return value if isinstance(value, str) else None


def _refused(children: list[str], request_id: str) -> ProxyError:
    log.warning("request_refused", request_id=request_id, children=children, reason="permission_denied")
    return ProxyError(
        403,
        "permission_denied",
        f"the site refused this request on children {' and '.join(children)} (permission denied: the "
        "page's proof was refused, or the accounts are flagged); it is not offered to more accounts. "
        "Retry later; if it persists, log those accounts in again (see GET /admin/children).",
    )
