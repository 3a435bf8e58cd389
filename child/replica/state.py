"""What the replica remembers while it runs: the sessions it accepts, the page loads it
served (each with the secret its proofs are made with), the runs it answered (in order,
for tests to read back), and how many runs each session had on each model (for quota).

One `ReplicaState` is created per replica and shared by its two listeners (the page and
the answer endpoint); nothing here is module-global, so two replicas in one process
never share a run.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Final

from child.replica.answer import Usage
from child.replica.config import ReplicaConfig
from child.replica.settings_panel import LEVEL_NAMES
from child.replica.wire import GenerateRequest

# Page loads remembered; a page older than this many loads can no longer make proofs.
PAGE_LOADS_KEPT: Final = 512


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED = "stopped"
    QUOTA = "quota"
    DENIED = "denied"


@dataclass(slots=True)
class PageLoad:
    """One load of the chat page: who loaded it, and the secret its script proves with."""

    page_id: str
    session: str
    proof_key: str
    used_proofs: set[str] = field(default_factory=set)

    def expected_proof(self, body: bytes) -> str:
        return hashlib.sha256(self.proof_key.encode() + body).hexdigest()

    def check_proof(self, body: bytes, proof: str | None) -> bool:
        """True once per body: a proof replayed, or made for another body, fails."""
        if proof is None or proof in self.used_proofs:
            return False
        if not hmac.compare_digest(proof.encode(), self.expected_proof(body).encode()):
            return False
        self.used_proofs.add(proof)
        return True


@dataclass(frozen=True, slots=True)
class RunSettings:
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    stop: tuple[str, ...]
    # The thinking level's name (None: the request had none), the grounding tools on.
    thinking_level: str | None = None
    search: bool = False
    url_context: bool = False


@dataclass(slots=True)
class Run:
    """One GenerateContent request: what was asked, what was sent (text, thoughts, or a
    function call), how it ended, and what the page reported it rendered."""

    run_id: str
    session: str | None
    model: str
    prompt: str
    system: str
    settings: RunSettings
    temporary: bool
    proof_ok: bool
    status: RunStatus = RunStatus.RUNNING
    answer: str = ""
    thoughts: str = ""
    usage: Usage = field(default_factory=Usage)
    finish: int | None = None
    text: str = ""
    reported: bool = False
    function_call: dict[str, Any] | None = None
    # The files of the prompt, as received (name, type, size, sha256; never the bytes).
    files: list[dict[str, Any]] = field(default_factory=list)
    function_calls: list[dict[str, Any]] = field(default_factory=list)
    # What the page's tools sent: declared functions, response MIME type and schema.
    tools: dict[str, Any] = field(default_factory=dict)
    sources: list[dict[str, str]] = field(default_factory=list)

    def end(self, status: RunStatus) -> None:
        """The one way a run's status changes: a running run ends once, the first end wins."""
        if self.status is RunStatus.RUNNING and status is not RunStatus.RUNNING:
            self.status = status

    def to_json(self) -> dict[str, Any]:
        usage = asdict(self.usage)
        return {
            "run_id": self.run_id,
            "session": self.session,
            "model": self.model,
            "prompt": self.prompt,
            "system": self.system,
            "settings": {**asdict(self.settings), "stop": list(self.settings.stop)},
            "temporary": self.temporary,
            "proof_ok": self.proof_ok,
            "status": str(self.status),
            "answer": self.answer,
            "thoughts": self.thoughts,
            "usage": {**usage, "total": self.usage.total},
            "finish": self.finish,
            "text": self.text,
            "reported": self.reported,
            "function_call": self.function_call,
            "files": self.files,
            "function_calls": self.function_calls,
            "tools": self.tools,
            "sources": self.sources,
        }


@dataclass
class ReplicaState:
    config: ReplicaConfig
    # Known once the listeners are bound (see ReplicaServer.start).
    api_url: str = ""
    page_origins: set[str] = field(default_factory=set)
    issued: set[str] = field(default_factory=set)
    pages: OrderedDict[str, PageLoad] = field(default_factory=OrderedDict)
    runs: list[Run] = field(default_factory=list)
    served: dict[tuple[str, str], int] = field(default_factory=dict)

    def accepts(self, session: str | None) -> bool:
        return session is not None and (session in self.config.sessions or session in self.issued)

    def issue_session(self) -> str:
        session = secrets.token_urlsafe(24)
        self.issued.add(session)
        return session

    def open_page(self, session: str) -> PageLoad:
        page = PageLoad(secrets.token_hex(8), session, secrets.token_hex(16))
        self.pages[page.page_id] = page
        while len(self.pages) > PAGE_LOADS_KEPT:
            self.pages.popitem(last=False)
        return page

    def page(self, page_id: str | None) -> PageLoad | None:
        return self.pages.get(page_id) if page_id else None

    def start_run(self, request: GenerateRequest, page: PageLoad | None, proof_ok: bool) -> Run:
        """Record a request as it arrives; the caller decides at once whether it is refused."""
        # The page's nonce is the run's id, so the page can report on it; a duplicate gets
        # an id of its own rather than overwrite another run's report.
        run_id = request.nonce if self.find(request.nonce) is None else secrets.token_hex(16)
        run = Run(
            run_id=run_id,
            session=page.session if page else None,
            model=request.model,
            prompt=request.prompt,
            system=request.system,
            settings=RunSettings(
                request.temperature,
                request.top_p,
                request.max_tokens,
                request.stop,
                LEVEL_NAMES.get(request.thinking_level or 0),
                request.search,
                request.url_context,
            ),
            temporary=request.temporary,
            proof_ok=proof_ok,
            files=[file.to_json() for file in request.files],
            tools={
                "functions": [asdict(function) for function in request.functions],
                "response_mime": request.response_mime,
                "response_schema": request.response_schema,
            },
        )
        self.runs.append(run)
        return run

    def over_quota(self, run: Run) -> bool:
        if run.session is None or self.config.quota_after == 0:
            return False
        return self.served.get((run.session, run.model), 0) >= self.config.quota_after

    def serve(self, run: Run) -> None:
        """The run is answered: it counts against its session's quota on its model."""
        if run.session is not None:
            key = (run.session, run.model)
            self.served[key] = self.served.get(key, 0) + 1

    def find(self, run_id: str) -> Run | None:
        return next((run for run in self.runs if run.run_id == run_id), None)

    def report(self, run: Run, text: str) -> None:
        """The page's report of what it rendered; the first one wins (a late beacon is ignored)."""
        if not run.reported:
            run.reported = True
            run.text = text

    def reset(self) -> None:
        """Forget runs and quota; sessions and open pages stay valid."""
        self.runs.clear()
        self.served.clear()
