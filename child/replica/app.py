"""The replica's routes: login, the chat page, the backend calls the page makes, and the
record of runs that tests read back.

The backend answers the way AI Studio's does where the driver can see it: the model list
from a `ListModels` call, `RESOURCE_EXHAUSTED` with 429 when the quota is spent, errors as
`{"error": {"code", "message", "status"}}`. A page or API call without an accepted session
cookie is sent to the login page (pages) or refused with 401 (API).
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from child.replica.config import SESSION_COOKIE, ReplicaConfig
from child.replica.pages import chat_page, login_page
from child.replica.state import FINISHED_STATUSES, ReplicaState, RunRequest, RunStatus
from child.tokens import split_tokens

CHAT_PATH = "/prompts/new_chat"
QUOTA_MESSAGE = "You've reached your rate limit. Please try again later."


class BadRequest(Exception):
    """A request body the replica cannot use; the message says which field and why."""


def google_error(status: int, code: str, message: str) -> JSONResponse:
    """An error in the shape of Google's APIs (the page shows `error.message` in a toast)."""
    return JSONResponse({"error": {"code": status, "message": message, "status": code}}, status_code=status)


def display_name(model: str) -> str:
    """ "replica-pro" -> "Replica Pro": the kind of name AI Studio shows beside the id."""
    return " ".join(part.capitalize() for part in model.replace("_", "-").split("-"))


def safe_continue(target: str | None) -> str:
    """Where to go after login: a path on this site only, never another host."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return CHAT_PATH
    return target


def _number(body: dict[str, Any], key: str, default: float) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{key} must be a number")
    return float(value)


def parse_run_request(body: Any, models: tuple[str, ...]) -> RunRequest:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadRequest("prompt must be a non-empty string")
    model = body.get("model", models[0])
    if not isinstance(model, str):
        raise BadRequest("model must be a string")
    model = model.removeprefix("models/")
    if model not in models:
        raise BadRequest(f"model {model!r} is not offered; choose one of {', '.join(models)}")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)):
        raise BadRequest("max_tokens must be an integer or null")
    stop = body.get("stop") or []
    if not isinstance(stop, list) or not all(isinstance(item, str) for item in stop):
        raise BadRequest("stop must be a list of strings")
    return RunRequest(
        prompt=prompt,
        model=model,
        temperature=_number(body, "temperature", 1.0),
        top_p=_number(body, "top_p", 0.95),
        max_tokens=max_tokens,
        stop=stop,
    )


class _Handlers:
    def __init__(self, state: ReplicaState) -> None:
        self.state = state

    def _session(self, request: Request) -> str | None:
        session = request.cookies.get(SESSION_COOKIE)
        return session if self.state.accepts(session) else None

    def _models(self) -> list[dict[str, Any]]:
        return [
            {"name": f"models/{model}", "displayName": display_name(model)}
            for model in self.state.config.models
        ]

    # ---- pages

    async def root(self, request: Request) -> Response:
        if self._session(request) is None:
            return self._to_login()
        return RedirectResponse(CHAT_PATH, status_code=302)

    async def new_chat(self, request: Request) -> Response:
        if self._session(request) is None:
            return self._to_login()
        # no-store: a reload must run the page's start-up again (model preference, ListModels).
        return HTMLResponse(chat_page(self._models()), headers={"Cache-Control": "no-store"})

    def _to_login(self) -> Response:
        # Slashes left as they are: the driver may look for "continue=/prompts/new_chat".
        query = urllib.parse.urlencode({"continue": CHAT_PATH}, safe="/")
        return RedirectResponse(f"/login?{query}", status_code=302)

    async def login_form(self, request: Request) -> Response:
        return HTMLResponse(login_page(safe_continue(request.query_params.get("continue"))))

    async def login(self, request: Request) -> Response:
        # A urlencoded form read by hand: starlette's form parser needs python-multipart.
        fields = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
        target = fields.get("continue", [""])[0] or request.query_params.get("continue")
        response = RedirectResponse(safe_continue(target), status_code=302)
        response.set_cookie(
            SESSION_COOKIE, self.state.issue_session(), path="/", httponly=True, samesite="lax"
        )
        return response

    # ---- the page's backend

    async def list_models(self, request: Request) -> Response:
        if self._session(request) is None:
            return _unauthenticated()
        return JSONResponse({"models": self._models()})

    async def generate(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return _unauthenticated()
        try:
            run_request = parse_run_request(await _json(request), self.state.config.models)
        except BadRequest as exc:
            return google_error(400, "INVALID_ARGUMENT", str(exc))
        run = self.state.start_run(session, run_request)
        if run.status is RunStatus.QUOTA:
            return google_error(429, "RESOURCE_EXHAUSTED", QUOTA_MESSAGE)
        config = self.state.config
        return JSONResponse(
            {
                "run_id": run.run_id,
                "tokens": split_tokens(run.answer),
                "first_token_ms": config.first_token_ms,
                "token_ms": config.token_ms,
            }
        )

    async def finished(self, request: Request) -> Response:
        if self._session(request) is None:
            return _unauthenticated()
        run = self.state.find(request.path_params["run_id"])
        if run is None:
            return google_error(404, "NOT_FOUND", "no such run")
        try:
            body = await _json(request)
        except BadRequest:
            body = None
        status = body.get("status") if isinstance(body, dict) else None
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(status, str) or status not in FINISHED_STATUSES or not isinstance(text, str):
            return google_error(400, "INVALID_ARGUMENT", 'expected {"status": "completed"|"stopped", "text"}')
        self.state.finish(run, RunStatus(status), text)
        return JSONResponse(run.to_json())

    # ---- the record, for tests

    async def runs(self, request: Request) -> Response:
        return JSONResponse([run.to_json() for run in self.state.runs])

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return JSONResponse({"ok": True})


async def _json(request: Request) -> Any:
    # Parsed whatever the content type: navigator.sendBeacon posts the report as text/plain.
    try:
        return json.loads(await request.body())
    except ValueError as exc:
        raise BadRequest("the request body is not JSON") from exc


def _unauthenticated() -> JSONResponse:
    return google_error(401, "UNAUTHENTICATED", "sign in first: the session cookie is missing or unknown")


def create_app(config: ReplicaConfig) -> Starlette:
    """The replica as an ASGI app; its state lives on `app.state.replica`."""
    state = ReplicaState(config)
    handlers = _Handlers(state)
    routes = [
        Route("/", handlers.root, methods=["GET"]),
        Route(CHAT_PATH, handlers.new_chat, methods=["GET"]),
        Route("/login", handlers.login_form, methods=["GET"]),
        Route("/login", handlers.login, methods=["POST"]),
        Route("/api/ListModels", handlers.list_models, methods=["GET", "POST"]),
        Route("/api/GenerateContent", handlers.generate, methods=["POST"]),
        Route("/api/runs/{run_id}/finished", handlers.finished, methods=["POST"]),
        Route("/__replica/runs", handlers.runs, methods=["GET"]),
        Route("/__replica/reset", handlers.reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.replica = state
    return app
