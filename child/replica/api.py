"""The answer endpoint: the replica's stand-in for `alkalimakersuite-pa.clients6.google.com`,
served over HTTPS on its own port, so the page's answer comes from another origin as on
AI Studio.

It answers the page's XHR with CORS for the page's origin, refuses a request whose proof
the page's script did not make (403, code 7), refuses models it denies (403, code 7) and
sessions past their quota on a model (429, code 8), and otherwise streams the reply one
frame per token, gzip-encoded when the request accepts it. When the client goes away
mid-answer (the page's Stop aborts its XHR) the run is recorded as stopped.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from typing import Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from child.replica.answer import FunctionCall, Reply, Usage, reply_for
from child.replica.config import ReplicaConfig, display_name
from child.replica.grounding import metadata, urls_read
from child.replica.settings_panel import LEVEL_NAMES
from child.replica.state import ReplicaState, Run, RunStatus
from child.replica.wire import (
    GENERATE_PATH,
    INVALID_ARGUMENT,
    LIST_MODELS_PATH,
    NOT_FOUND,
    PERMISSION_DENIED,
    RESOURCE_EXHAUSTED,
    RESPONSE_CONTENT_TYPE,
    UNAUTHENTICATED,
    BodyWriter,
    JsonArray,
    WireError,
    dumps,
    error_body,
    frame,
    function_call_part,
    parse_request,
    signature_part,
    text_part,
    thought_part,
)

# The page's headers: which page load it is, and its proof for this very body.
PAGE_HEADER: Final = "X-Replica-Page"
PROOF_HEADER: Final = "X-Replica-Proof"
ALLOWED_HEADERS: Final = f"content-type, {PAGE_HEADER.lower()}, {PROOF_HEADER.lower()}"
NO_STORE: Final = "no-cache, no-store, max-age=0, must-revalidate"


@dataclass(frozen=True, slots=True)
class Sent:
    """One frame of a reply and what it adds to the run's record."""

    data: JsonArray
    usage: Usage
    answer: str = ""
    thought: str = ""
    calls: tuple[FunctionCall, ...] = ()


def reply_frames(reply: Reply) -> Iterator[Sent]:
    """The reply as the endpoint streams it: a frame per thought token, the thought
    signature, then a frame per answer token carrying the running usage, the last one
    with the finish code (an empty answer is one empty text frame)."""
    thinking = len(reply.thoughts)
    for count, token in enumerate(reply.thoughts, start=1):
        yield Sent(frame([thought_part(token)]), Usage(reply.prompt_tokens, 0, count), thought=token)
    if thinking:
        digest = hashlib.sha256("".join(reply.thoughts).encode()).digest()
        signature = base64.b64encode(digest).decode()
        yield Sent(frame([signature_part(signature)]), Usage(reply.prompt_tokens, 0, thinking))
    if reply.calls:
        # Parallel calls come as parts of one frame.
        counts = reply.usage
        parts = [function_call_part(call.name, call.arguments) for call in reply.calls]
        yield Sent(frame(parts, reply.finish, counts), counts, calls=reply.calls)
        return
    tokens = reply.answer or ("",)
    for index, token in enumerate(tokens):
        counts = Usage(reply.prompt_tokens, min(index + 1, len(reply.answer)), thinking)
        last = index == len(tokens) - 1
        finish = reply.finish if last else None
        # As Gemini: the grounding rides on the last frame, once the whole text is out.
        grounding = reply.grounding if last else None
        extras = (
            (metadata("".join(reply.answer), grounding), urls_read(grounding)) if grounding else (None, None)
        )
        yield Sent(frame([text_part(token)], finish, counts, *extras), counts, answer=token)


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (`;q=0` refuses it)."""
    for item in accept_encoding.lower().split(","):
        coding, *params = (piece.strip() for piece in item.split(";"))
        if coding in ("gzip", "*"):
            quality = next((param[2:] for param in params if param.startswith("q=")), "1")
            try:
                return float(quality) > 0
            except ValueError:
                return False
    return False


def model_entry(model: str, sampling: bool, thinking: bool, config: ReplicaConfig | None = None) -> JsonArray:
    """One model as ListModels lists it (positions as the replica's page reads them): [16]
    its thinking levels, [17] the default one, [18] whether it offers the grounding tools."""
    name = display_name(model)
    levels = list(config.thinking_levels.get(model, ())) if config else []
    return [
        f"models/{model}", None, "001", name, f"{name}, a model of the replica",
        None, None, 1048576, 65536,
        1.0 if sampling else None, 0.95 if sampling else None, 64 if sampling else None,
        ["generateContent", "countTokens"], None, None, thinking,
        levels or None, config.default_level(model) if config else None,
        config is not None and model in config.grounding_models,
    ]  # fmt: skip


def settings_refusal(
    config: ReplicaConfig, model: str, level: int | None, search: bool, url: bool
) -> str | None:
    """Why the endpoint refuses a thinking level or tool the model does not offer, or None."""
    if level is not None and LEVEL_NAMES.get(level) not in config.thinking_levels.get(model, ()):
        return f"Thinking level {level} is not supported by models/{model}."
    if (search or url) and model not in config.grounding_models:
        return f"Grounding tools are not supported by models/{model}."
    return None


class _Api:
    def __init__(self, state: ReplicaState) -> None:
        self.state = state
        self.config = state.config

    def _cors(self, request: Request) -> dict[str, str]:
        origin = request.headers.get("origin")
        if origin is None or origin not in self.state.page_origins:
            return {}
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true"}

    def _error(self, request: Request, status: int, code: int, message: str) -> Response:
        headers = {**self._cors(request), "Vary": "Origin"}
        return Response(error_body(code, message), status, headers, RESPONSE_CONTENT_TYPE)

    async def preflight(self, request: Request) -> Response:
        cors = self._cors(request)
        if not cors:
            return Response(status_code=403)
        headers = {
            **cors,
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }
        return Response(status_code=204, headers=headers)

    async def list_models(self, request: Request) -> Response:
        if self.state.page(request.headers.get(PAGE_HEADER)) is None:
            return self._error(request, 401, *UNAUTHENTICATED)
        config = self.config
        entries = [
            model_entry(
                model, model not in config.no_sampling_models, model in config.thinking_models, config
            )
            for model in config.models
        ]
        headers = {**self._cors(request), "Vary": "Origin", "Cache-Control": NO_STORE}
        return Response(dumps([entries]), 200, headers, RESPONSE_CONTENT_TYPE)

    async def generate(self, request: Request) -> Response:
        body = await request.body()
        try:
            parsed = parse_request(body)
        except WireError:
            return self._error(request, 400, *INVALID_ARGUMENT)
        config = self.config
        if parsed.model not in config.models:
            message = f"models/{parsed.model} is not found for API version v1beta, or is not supported."
            return self._error(request, 404, NOT_FOUND, message)
        refusal = settings_refusal(
            config, parsed.model, parsed.thinking_level, parsed.search, parsed.url_context
        )
        if refusal is not None:
            return self._error(request, 400, INVALID_ARGUMENT[0], refusal)
        page = self.state.page(request.headers.get(PAGE_HEADER))
        proof_ok = page is not None and page.check_proof(body, request.headers.get(PROOF_HEADER))
        run = self.state.start_run(parsed, page, proof_ok)
        if not proof_ok or parsed.model in config.permission_denied:
            run.end(RunStatus.DENIED)
            return self._error(request, 403, *PERMISSION_DENIED)
        if self.state.over_quota(run):
            run.end(RunStatus.QUOTA)
            return self._error(request, 429, *RESOURCE_EXHAUSTED)
        self.state.serve(run)
        level = LEVEL_NAMES.get(parsed.thinking_level) if parsed.thinking_level is not None else None
        reply = reply_for(
            parsed.prompt,
            parsed.model,
            max_tokens=parsed.max_tokens,
            stop=parsed.stop,
            # A level thinks unless it is Minimal; a request without one, as the model does.
            thinking=level != "Minimal" if level else parsed.model in config.thinking_models,
            context=parsed.context,
            files=parsed.files,
            functions=parsed.functions,
            response_mime=parsed.response_mime,
            response_schema=parsed.response_schema,
            system=parsed.system,
            level=level,
            search=parsed.search,
            url_context=parsed.url_context,
        )
        if reply.grounding is not None:
            run.sources = [{"url": source.url, "title": source.title} for source in reply.grounding.sources]
        gzip = accepts_gzip(request.headers.get("accept-encoding", ""))
        headers = {**self._cors(request), "Cache-Control": NO_STORE, "X-Content-Type-Options": "nosniff"}
        headers["Vary"] = "Origin, Accept-Encoding"
        if gzip:
            headers["Content-Encoding"] = "gzip"
        return FrameStream(self._stream(run, reply, gzip), run, headers)

    async def _stream(self, run: Run, reply: Reply, gzip: bool) -> AsyncGenerator[bytes, None]:
        writer = BodyWriter(gzip)
        config = self.config
        for index, sent in enumerate(reply_frames(reply)):
            await asyncio.sleep((config.token_ms if index else config.first_token_ms) / 1000)
            yield writer.frame(sent.data)
            # Recorded once handed to the server: the run holds what was sent.
            run.answer += sent.answer
            run.thoughts += sent.thought
            run.usage = sent.usage
            for call in sent.calls:
                recorded = {"name": call.name, "arguments": dict(call.arguments)}
                run.function_call = run.function_call or recorded
                run.function_calls.append(recorded)
        run.finish = int(reply.finish)
        yield writer.close()
        run.end(RunStatus.COMPLETED)


class FrameStream(StreamingResponse):
    """A streamed answer that marks its run stopped if it ends before the last frame: the
    client went away (starlette cancels the stream when it sees the disconnect)."""

    def __init__(self, frames: AsyncGenerator[bytes, None], run: Run, headers: dict[str, str]) -> None:
        super().__init__(frames, headers=headers, media_type=RESPONSE_CONTENT_TYPE)
        self.frames = frames
        self.run = run

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.run.end(RunStatus.STOPPED)  # a no-op after the last frame
            # Closed here, not whenever the collector gets to it.
            await self.frames.aclose()


def create_api_app(state: ReplicaState) -> Starlette:
    """The answer endpoint as an ASGI app, over the state it shares with the page's app."""
    api = _Api(state)
    routes = [
        Route(GENERATE_PATH, api.generate, methods=["POST"]),
        Route(GENERATE_PATH, api.preflight, methods=["OPTIONS"]),
        Route(LIST_MODELS_PATH, api.list_models, methods=["POST"]),
        Route(LIST_MODELS_PATH, api.preflight, methods=["OPTIONS"]),
    ]
    return Starlette(routes=routes)
