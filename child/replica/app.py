"""The replica's page origin (plain HTTP): login, the chat page, the page's report of what
it rendered, and the record of runs that tests read back.

A page without an accepted session cookie is sent to the login page, as AI Studio sends
a logged-out browser to accounts.google.com; the answers themselves come from the other
origin (`child.replica.api`).
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from child.replica.config import SESSION_COOKIE, ReplicaConfig
from child.replica.pages import PERMISSION_MESSAGE, QUOTA_MESSAGE, chat_page, login_page, page_boot
from child.replica.state import ReplicaState

__all__ = ["CHAT_PATH", "PERMISSION_MESSAGE", "QUOTA_MESSAGE", "create_app"]

CHAT_PATH: Final = "/prompts/new_chat"


def safe_continue(target: str | None) -> str:
    """Where to go after login: a path on this site only, never another host."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return CHAT_PATH
    return target


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": status, "message": message}}, status_code=status)


class _Handlers:
    def __init__(self, state: ReplicaState) -> None:
        self.state = state

    def _session(self, request: Request) -> str | None:
        session = request.cookies.get(SESSION_COOKIE)
        return session if self.state.accepts(session) else None

    # ---- pages

    async def root(self, request: Request) -> Response:
        if self._session(request) is None:
            return self._to_login()
        return RedirectResponse(CHAT_PATH, status_code=302)

    async def new_chat(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return self._to_login()
        page = self.state.open_page(session)
        boot = page_boot(self.state.config, page, self.state.api_url)
        # no-store: every load is a new page load, with its own proof secret.
        return HTMLResponse(chat_page(boot, self.state.config.drift), headers={"Cache-Control": "no-store"})

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

    # ---- the page's report on a run

    async def finished(self, request: Request) -> Response:
        if self._session(request) is None:
            return _error(401, "sign in first: the session cookie is missing or unknown")
        run = self.state.find(request.path_params["run_id"])
        if run is None:
            return _error(404, "no such run")
        # Parsed whatever the content type: navigator.sendBeacon posts the report as text/plain.
        try:
            body: Any = json.loads(await request.body())
        except ValueError:
            body = None
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str):
            return _error(400, 'expected {"text": "<what the page rendered>"}')
        self.state.report(run, text)
        return JSONResponse(run.to_json())

    # ---- the record, for tests and the demo

    async def runs(self, request: Request) -> Response:
        return JSONResponse([run.to_json() for run in self.state.runs])

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return JSONResponse({"ok": True})

    async def info(self, request: Request) -> Response:
        """Where the answer endpoint is, for a process that started the replica as a command."""
        return JSONResponse({"api_url": self.state.api_url, "models": list(self.state.config.models)})


def create_app(config: ReplicaConfig, state: ReplicaState | None = None) -> Starlette:
    """The page origin as an ASGI app; its state (shared with the answer endpoint's app)
    lives on `app.state.replica`."""
    state = state if state is not None else ReplicaState(config)
    handlers = _Handlers(state)
    routes = [
        Route("/", handlers.root, methods=["GET"]),
        Route(CHAT_PATH, handlers.new_chat, methods=["GET"]),
        Route("/login", handlers.login_form, methods=["GET"]),
        Route("/login", handlers.login, methods=["POST"]),
        Route("/api/runs/{run_id}/finished", handlers.finished, methods=["POST"]),
        Route("/__replica/runs", handlers.runs, methods=["GET"]),
        Route("/__replica/reset", handlers.reset, methods=["POST"]),
        Route("/__replica/info", handlers.info, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.replica = state
    return app
