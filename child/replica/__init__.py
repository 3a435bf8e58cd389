"""The replica: a local stand-in for AI Studio's chat page, so that the browser driver can
be demoed and tested with no Google account.

It has the page's elements and flows (login redirect, progressive answers, a Run button
that stops, New chat, run settings, model choice, quota toast) and a record of every run
at `/__replica/runs` for tests. `python -m child.replica --port P` runs it on its own;
`ReplicaServer` runs it inside another program's event loop.
"""

from child.replica.answer import answer_for
from child.replica.app import CHAT_PATH, QUOTA_MESSAGE, create_app
from child.replica.config import SESSION_COOKIE, ReplicaConfig
from child.replica.server import ReplicaServer, serve

__all__ = [
    "CHAT_PATH",
    "QUOTA_MESSAGE",
    "SESSION_COOKIE",
    "ReplicaConfig",
    "ReplicaServer",
    "answer_for",
    "create_app",
    "serve",
]
