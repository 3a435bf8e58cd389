"""The child: one process per profile, driving one browser page behind a private HTTP API.

The coordinator starts it as `python -m child ...` and talks to it over 127.0.0.1 only,
with a per-run token. It serves one request at a time and does no scheduling.
"""

# rich kept out of structlog and httpx, before any module of ours imports them: see the
# coordinator package.
import coordinator  # noqa: F401
