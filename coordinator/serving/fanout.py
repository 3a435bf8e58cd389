"""`n` > 1: one chat request fanned out over n children, their answers merged into one.

A child answers one choice per request, so a request for n choices becomes n
sub-requests of one choice each, sent in parallel through the proxy (each waits in the
queue, is retried before its first byte and relayed like any request, on a child of its
own). Sub-request `i` of request `R` has the id `R~i`: `~` is not a character a client's
id may have, so a sub-request can never take a client's id.

The answers are merged as OpenAI sends n choices. Whole: one `chat.completion` whose
choice `i` is sub-request i's, with the prompt's tokens counted once and the completion
tokens summed. Streamed: the chunks of the n answers as they come, each with its choice
`index` set to i and the request's own completion id, one `[DONE]` once every choice has
finished, and before it one usage chunk (the sums) if the client asked for usage. The
stream starts with the first sub-answer's first chunk; a sub-request that fails before
then fails the whole request as a plain HTTP error, one that fails after ends the stream
with its error event and no `[DONE]`. Either way the others are cancelled. The
sub-requests wait in the request's own priority lane.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import structlog

from coordinator.lifecycle.child import Child
from coordinator.protocol import openai as wire
from coordinator.serving.lanes import Lane
from coordinator.serving.pool import Pool, Waiter
from coordinator.serving.proxy import Answer, Proxy

log = structlog.get_logger("coordinator.serving.fanout")

SEPARATOR = "~"  # between a request's id and its choice's: never in a client's id
# Events of the n answers that may wait for a slow client before their children wait too.
_BACKLOG = 64
T = TypeVar("T")


class ChoiceFailed(wire.OpenAIError):
    """A sub-request answered with an error, or got none; `event` is its SSE error event
    (a child's own, as it sent it, where it sent one)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        retry_after: int | None = None,
        said: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(status, code, message, param=param, retry_after=retry_after)
        self.said = said

    @classmethod
    def from_body(cls, status: int, body: bytes) -> ChoiceFailed:
        """The error a child answered (OpenAI's shape), passed on as it said it."""
        try:
            error = json.loads(body)["error"]
            code, message, param = error.get("code"), error["message"], error.get("param")
        except (ValueError, KeyError, TypeError, AttributeError):
            code, message, param = None, body[:500].decode(errors="replace") or f"status {status}", None
        return cls(status, code if isinstance(code, str) else "child_failed", str(message), param=param)

    @classmethod
    def of(cls, exc: wire.OpenAIError) -> ChoiceFailed:
        if isinstance(exc, ChoiceFailed):
            return exc
        param = getattr(exc, "param", None)
        return cls(exc.status, exc.code, exc.message, param=param, retry_after=exc.retry_after)

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> ChoiceFailed:
        """The error event a child's stream ended with."""
        error = event.get("error")
        error = error if isinstance(error, dict) else {}
        code = error.get("code")
        message = error.get("message")
        return cls(
            502,
            code if isinstance(code, str) else "child_failed",
            message if isinstance(message, str) else "the answer failed",
            said=event,
        )

    @property
    def event(self) -> bytes:
        if self.said is not None:
            return wire.sse_event(self.said)
        body = wire.error_body(self.message, status=self.status, code=self.code, param=self.param)
        return wire.sse_event(body)


# One choice's news for the merge: (choice, a data event's JSON | its failure | None: it ended).
_Item = tuple[int, dict[str, Any] | ChoiceFailed | None]


def sub_id(request_id: str, index: int) -> str:
    return f"{request_id}{SEPARATOR}{index}"


class FanOut:
    """Serves requests with n > 1 over the proxy; knows which are running, for cancel."""

    def __init__(self, proxy: Proxy, pool: Pool) -> None:
        self.proxy = proxy
        self.pool = pool
        self.running: dict[str, int] = {}  # request id → its n, while it runs

    def check(self, chat: wire.ChatRequest) -> None:
        """Refuse an n larger than the number of children that serve the model (whether
        free now or not): n choices need n children."""
        capable = self.pool.capable(chat.model)
        if chat.n > capable:
            what = f"the model {chat.model!r}" if chat.model is not None else "the default model"
            serve = "1 child serves" if capable == 1 else f"{capable} children serve"
            raise wire.InvalidRequest(
                f"'n' is {chat.n}, but {serve} {what}: each choice is answered by a child of its "
                f"own. Send n <= {capable}, or add profiles.",
                param="n",
                code="unsupported_parameter",
            )

    def locate(self, request_id: str) -> dict[str, Child | Waiter]:
        """Where each choice of a fanned-out request is now (a child, or a place in the
        queue), by its sub-request id; empty if no such request runs."""
        found = (
            (sub, self.pool.locate(sub))
            for sub in (sub_id(request_id, index) for index in range(self.running.get(request_id, 0)))
        )
        return {sub: holder for sub, holder in found if holder is not None}

    async def cancel(self, request_id: str) -> list[str]:
        """Cancel every choice of `request_id` (its client gets `request_cancelled`); the
        children that were told to stop."""
        stopped = []
        for sub, holder in self.locate(request_id).items():
            if isinstance(holder, Waiter):
                self.pool.cancel_waiting(holder)
            elif await self.proxy.cancel_on(holder, sub):
                stopped.append(holder.id)
        return stopped

    # -- whole answers ------------------------------------------------------------------

    async def complete(
        self, chat: wire.ChatRequest, request_id: str, lane: Lane = Lane.NORMAL
    ) -> tuple[bytes, list[str]]:
        """The merged `chat.completion` and the children that answered, or ChoiceFailed."""
        sub, raw = _sub_request(chat)

        async def one(index: int) -> tuple[dict[str, Any], str]:
            answer = await self.open_choice(sub, raw, sub_id(request_id, index), lane)
            if answer.status != 200:
                raise ChoiceFailed.from_body(answer.status, answer.body)
            try:
                body: dict[str, Any] = json.loads(answer.body)
                body["choices"][0]["message"]  # the shape, checked once here
            except (ValueError, KeyError, IndexError, TypeError):
                raise ChoiceFailed(
                    502, "child_failed", f"child {answer.child.id} answered a body that is not a completion"
                ) from None
            return body, answer.child.id

        with self._registered(request_id, chat.n):
            answers = await _all_or_none([functools.partial(one, index) for index in range(chat.n)])
        bodies = [body for body, _ in answers]
        merged = {
            **bodies[0],
            "id": f"chatcmpl-{request_id}",
            "choices": [body["choices"][0] | {"index": index} for index, body in enumerate(bodies)],
        }
        usages = [body.get("usage") for body in bodies]
        if all(isinstance(usage, dict) for usage in usages):
            merged["usage"] = merge_usage([usage for usage in usages if isinstance(usage, dict)])
        return _dumps(merged), [child for _, child in answers]

    # -- streamed answers ---------------------------------------------------------------

    async def stream(self, chat: wire.ChatRequest, request_id: str, lane: Lane = Lane.NORMAL) -> Merged:
        """The merged stream, once one choice has its first chunk; ChoiceFailed if one
        failed before that. The caller must close it (`aclose`), however it ends."""
        merged = Merged(self, chat, request_id, lane)
        try:
            await merged.start()
        except BaseException:
            await merged.aclose()
            raise
        return merged

    async def open_choice(
        self, chat: wire.ChatRequest, raw: bytes, request_id: str, lane: Lane = Lane.NORMAL
    ) -> Answer:
        """One choice's sub-request, opened through the proxy; its failure as ChoiceFailed."""
        try:
            return await self.proxy.open(chat, raw, request_id, lane)
        except wire.OpenAIError as exc:
            raise ChoiceFailed.of(exc) from None

    @contextlib.contextmanager
    def _registered(self, request_id: str, n: int) -> Iterator[None]:
        self.running[request_id] = n
        try:
            yield
        finally:
            self.running.pop(request_id, None)


class Merged:
    """The n streams of a fanned-out request, merged as their chunks come."""

    def __init__(self, fanout: FanOut, chat: wire.ChatRequest, request_id: str, lane: Lane) -> None:
        self.fanout = fanout
        self.chat = chat
        self.request_id = request_id
        self.lane = lane
        self.children: list[str] = []
        # What the choices report, in the order they report it. A choice's data events wait
        # for room (so a slow client slows its children), its end never does.
        self._events: asyncio.Queue[_Item] = asyncio.Queue()
        self._room = asyncio.Semaphore(_BACKLOG)
        # Choices that have ended (or are ending): their clean-up is not to be cut short.
        self._ended: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._first: _Item | None = None

    async def start(self) -> None:
        sub, raw = _sub_request(self.chat)
        self.fanout.running[self.request_id] = self.chat.n
        self._tasks = [
            asyncio.create_task(self._relay(sub, raw, index), name=f"choice-{sub_id(self.request_id, index)}")
            for index in range(self.chat.n)
        ]
        self._first = await self._take()
        _, event = self._first
        if isinstance(event, ChoiceFailed):
            raise event

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The client's SSE body: every choice's chunks, then usage and `[DONE]`, or an error event."""
        assert self._first is not None
        pending = self._first
        self._first = None
        open_choices = self.chat.n
        usages: list[dict[str, Any]] = []
        created: int | None = None
        model: str | None = self.chat.model
        while True:
            index, event = pending
            if isinstance(event, ChoiceFailed):
                yield event.event
                return
            if event is None:
                open_choices -= 1
                if not open_choices:
                    break
            elif not event.get("choices") and isinstance(event.get("usage"), dict):
                usages.append(event["usage"])  # summed into one usage chunk at the end
            else:
                created = created or event.get("created")
                model = event.get("model") or model
                yield wire.sse_event(self._rewrite(event, index, created))
            pending = await self._take()
        if self.chat.include_usage and len(usages) == self.chat.n:
            usage: dict[str, Any] = {
                "id": f"chatcmpl-{self.request_id}",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": merge_usage(usages),
            }
            yield wire.sse_event(usage)
        elif len(usages) == self.chat.n:
            yield wire.usage_note(merge_usage(usages))  # for the ledger; the route takes it out
        yield wire.SSE_DONE

    def _rewrite(self, event: dict[str, Any], index: int, created: int | None) -> dict[str, Any]:
        choices = event.get("choices")
        if isinstance(choices, list):
            event["choices"] = [c | {"index": index} if isinstance(c, dict) else c for c in choices]
        event["id"] = f"chatcmpl-{self.request_id}"
        if created is not None:
            event["created"] = created
        return event

    async def aclose(self) -> None:
        """Stop every choice still running (its child is told to stop) and wait for them all.

        A choice that has ended is not cancelled: it may be telling its child to stop, and
        a second cancel would cut that short and leave the child held."""
        for index, task in enumerate(self._tasks):
            if index not in self._ended:
                task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.fanout.running.pop(self.request_id, None)

    async def _take(self) -> _Item:
        item = await self._events.get()
        if isinstance(item[1], dict):
            self._room.release()
        return item

    async def _put(self, index: int, event: dict[str, Any]) -> None:
        await self._room.acquire()
        self._events.put_nowait((index, event))

    def _end(self, index: int, failure: ChoiceFailed | None = None) -> None:
        self._ended.add(index)
        self._events.put_nowait((index, failure))

    async def _relay(self, sub: wire.ChatRequest, raw: bytes, index: int) -> None:
        """One choice: open it, then pass its events on, then say it ended (or failed)."""
        request_id = sub_id(self.request_id, index)
        try:
            answer = await self.fanout.open_choice(sub, raw, request_id, self.lane)
            if answer.stream is None:
                # An error answered before any stream (a 4xx the request earned): the child
                # is free already.
                if answer.status != 200:
                    raise ChoiceFailed.from_body(answer.status, answer.body)
                raise ChoiceFailed(
                    502, "child_failed", f"child {answer.child.id} answered a stream request whole"
                )
            self.children.append(answer.child.id)
            done = False
            async with contextlib.aclosing(self.fanout.proxy.relay(answer, request_id)) as relay:
                # Read to the stream's end, past [DONE]: so the relay sees the answer whole
                # and gives its child back as having served.
                async for event in _sse_events(relay):
                    if done:
                        continue
                    if event is None:
                        done = True
                    elif "error" in event:
                        self._ended.add(index)
                        raise ChoiceFailed.from_event(event)
                    else:
                        await self._put(index, event)
            if not done:
                raise ChoiceFailed(
                    502,
                    "child_failed",
                    f"child {answer.child.id} ended choice {index} without [DONE]; the answer is incomplete",
                )
            self._end(index)
        except ChoiceFailed as failed:
            self._end(index, failed)
        except Exception as exc:
            # The merge must hear of every end, or the client's stream would wait for ever.
            log.error("choice_failed", request_id=request_id, error=repr(exc))
            self._end(index, ChoiceFailed(500, "internal_error", f"choice {index} failed"))


async def _sse_events(relay: AsyncGenerator[bytes, None]) -> AsyncGenerator[dict[str, Any] | None, None]:
    """The `data:` events of a child's stream as JSON objects, None for `[DONE]`, to its end."""
    buffer = b""
    async for chunk in relay:
        buffer += chunk
        *events, buffer = buffer.split(b"\n\n")
        for raw in events:
            for line in raw.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue  # a comment or a blank line between events
                data = line[5:].strip()
                if data == b"[DONE]":
                    yield None
                    continue
                with contextlib.suppress(ValueError):
                    event = json.loads(data)
                    if isinstance(event, dict):
                        yield event


async def _all_or_none(makers: list[Callable[[], Awaitable[T]]]) -> list[T]:
    """Every result, in order; the first failure cancels the rest and is raised."""
    tasks = [asyncio.ensure_future(make()) for make in makers]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task.done() and not task.cancelled() and (failure := task.exception()) is not None:
                raise failure
        return [task.result() for task in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def merge_usage(usages: list[dict[str, Any]]) -> dict[str, Any]:
    """One usage for n choices of one prompt: the prompt counted once, the completions summed."""
    prompt = int(usages[0].get("prompt_tokens") or 0)
    completion = sum(int(usage.get("completion_tokens") or 0) for usage in usages)
    reasoning = sum(
        int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0) for usage in usages
    )
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def _sub_request(chat: wire.ChatRequest) -> tuple[wire.ChatRequest, bytes]:
    """One choice's request: the client's body with n = 1, and usage asked for (to be summed)."""
    body = {name: value for name, value in chat.body.items() if name != "n"}
    if chat.stream:
        options = body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    sub = dataclasses.replace(chat, body=body, n=1, include_usage=chat.stream)
    return sub, _dumps(body)


def _dumps(content: Any) -> bytes:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
