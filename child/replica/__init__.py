"""The replica: a local stand-in for AI Studio's chat page as of 2026, demanding enough
that a driver which would fail on the real page fails on it too.

Two origins, as on AI Studio: the page (plain HTTP: login redirect, the 2026 elements,
pop-ups at load, Run that becomes Stop, New chat, temporary chat, run settings, model
choice, markdown rendering) and the answer endpoint (HTTPS with its own CA: the page's
XHR, signed with a proof only the page's script makes, answered in json+protobuf frames,
quota and permission errors). Every run is recorded at `/__replica/runs` for tests.
`python -m child.replica --port P` runs it on its own; `ReplicaServer` runs it inside
another program's event loop. The contract it implements is spec-11, sections A to C.
"""

from child.replica.answer import Finish, Reply, Usage, answer_for, reply_for
from child.replica.app import CHAT_PATH, PERMISSION_MESSAGE, QUOTA_MESSAGE, create_app
from child.replica.config import SESSION_COOKIE, ReplicaConfig
from child.replica.drift import DRIFTS
from child.replica.server import ReplicaServer, serve
from child.replica.wire import GENERATE_PATH, LIST_MODELS_PATH

__all__ = [
    "CHAT_PATH",
    "DRIFTS",
    "GENERATE_PATH",
    "LIST_MODELS_PATH",
    "PERMISSION_MESSAGE",
    "QUOTA_MESSAGE",
    "SESSION_COOKIE",
    "Finish",
    "ReplicaConfig",
    "ReplicaServer",
    "Reply",
    "Usage",
    "answer_for",
    "create_app",
    "reply_for",
    "serve",
]
