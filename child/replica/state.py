"""What the replica remembers while it runs: the sessions it accepts, the runs it served
(in order, for tests to read back), and how many runs each session has had (for quota).

One `ReplicaState` is created per app by the factory; nothing here is module-global, so
two replicas in one process (two tests, or a demo beside a test) never share a run.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from child.replica.answer import answer_for
from child.replica.config import ReplicaConfig


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED = "stopped"
    QUOTA = "quota"


# What the page may report when it stops rendering a run.
FINISHED_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.STOPPED})


@dataclass(frozen=True, slots=True)
class RunRequest:
    """The run settings a page sent with its prompt."""

    prompt: str
    model: str
    temperature: float
    top_p: float
    max_tokens: int | None
    stop: list[str]


@dataclass(slots=True)
class Run:
    """One submission, as the server saw it and as the page later reported it."""

    run_id: str
    session: str
    request: RunRequest
    status: RunStatus
    answer: str
    text: str = ""

    def to_json(self) -> dict[str, Any]:
        # Flat, as tests and the demo read it: the request's fields beside the run's own.
        return {
            "run_id": self.run_id,
            "session": self.session,
            **asdict(self.request),
            "status": str(self.status),
            "answer": self.answer,
            "text": self.text,
        }


@dataclass
class ReplicaState:
    config: ReplicaConfig
    issued: set[str] = field(default_factory=set)
    runs: list[Run] = field(default_factory=list)
    runs_by_session: dict[str, int] = field(default_factory=dict)

    def accepts(self, session: str | None) -> bool:
        return session is not None and (session in self.config.sessions or session in self.issued)

    def issue_session(self) -> str:
        session = secrets.token_urlsafe(24)
        self.issued.add(session)
        return session

    def start_run(self, session: str, request: RunRequest) -> Run:
        """Record a submission: a running run with its answer, or a quota run with none."""
        served = self.runs_by_session.get(session, 0)
        over_quota = 0 < self.config.quota_after <= served
        run = Run(
            # Random rather than a counter: a page that outlives a reset must not report
            # its old run under the id of a new one.
            run_id=secrets.token_hex(8),
            session=session,
            request=request,
            status=RunStatus.QUOTA if over_quota else RunStatus.RUNNING,
            answer=""
            if over_quota
            else answer_for(request.prompt, request.model, request.max_tokens, request.stop),
        )
        if not over_quota:
            self.runs_by_session[session] = served + 1
        self.runs.append(run)
        return run

    def find(self, run_id: str) -> Run | None:
        return next((run for run in self.runs if run.run_id == run_id), None)

    def finish(self, run: Run, status: RunStatus, text: str) -> None:
        """The page's report on a run; the first one wins, later ones (a beacon) are ignored."""
        if run.status is RunStatus.RUNNING:
            run.status = status
            run.text = text

    def reset(self) -> None:
        self.runs.clear()
        self.runs_by_session.clear()
