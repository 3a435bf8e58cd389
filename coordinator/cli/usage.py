"""`coordinator usage`: the running coordinator's usage report, as a table or as JSON;
with `--quota`, its quota view (`GET /admin/usage/quota`).

It asks `GET /admin/usage` over HTTP, as `coordinator status` asks `/admin/children`,
rather than opening the SQLite file: the coordinator owns the file (its writer thread,
its retention), the admin key guards the report the same way everywhere, and it works
from another machine or container where the file is not at hand.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from coordinator.cli.status import StatusError
from coordinator.cli.table import clip, table

HEADERS = ("GROUP", "REQUESTS", "ERRORS", "PROMPT TOK", "COMPL TOK", "REASON TOK", "TTFT P50 MS", "AVG MS")
_FIELDS = (
    "requests", "errors", "prompt_tokens", "completion_tokens", "reasoning_tokens", "ttft_p50_ms",
    "duration_avg_ms",
)  # fmt: skip


QUOTA_HEADERS = (
    "PROFILE", "MODEL", "REQUESTS", "LIMIT", "REMAINING", "PROMPT TOK", "COMPL TOK", "REASON TOK",
    "QUOTA HITS", "LAST HIT",
)  # fmt: skip
_QUOTA_FIELDS = (
    "requests", "daily_limit", "remaining", "prompt_tokens", "completion_tokens", "reasoning_tokens",
    "quota_hits", "last_quota_hit",
)  # fmt: skip


def fetch(
    url: str,
    api_key: str | None,
    params: dict[str, str],
    *,
    timeout: float = 10.0,
    transport: httpx.BaseTransport | None = None,
    path: str = "/admin/usage",
    listed: str = "data",
) -> dict[str, Any]:
    """The body of `GET path` with `params` (whose list is under `listed`), or a `StatusError`
    that says what went wrong."""
    url = url.rstrip("/")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=timeout, transport=transport) as client:
            response = client.get(path, params=params)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        raise StatusError(f"{url} is not an http:// or https:// URL; pass --url http://HOST:PORT") from None
    except httpx.HTTPError as exc:
        reason = (
            f"no answer in {timeout:g}s" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__
        )
        raise StatusError(f"no coordinator answers at {url}: is it running? ({reason})") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code in (401, 403):
        raise StatusError(f"{url} refused the key ({response.status_code}): pass --admin-key or --api-key")
    if response.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get(listed), list):
        error = body.get("error") if isinstance(body, dict) else None
        said = error.get("message") if isinstance(error, dict) else None
        raise StatusError(f"{url} answered {response.status_code}: {said or 'not a usage report'}")
    return body


def render(report: dict[str, Any]) -> str:
    rows = [
        [clip(str(item.get("group")), 40), *(_cell(item.get(name)) for name in _FIELDS)]
        for item in report["data"]
        if isinstance(item, dict)
    ]
    title = f"usage by {report.get('group_by')}"
    if not rows:
        return f"{title}: no requests"
    return f"{title}\n\n{table(HEADERS, rows, right=range(1, len(HEADERS)))}"


def render_quota(view: dict[str, Any]) -> str:
    """The quota view as a table, under the quota day it covers."""
    found = view.get("quota_day")
    day: dict[str, Any] = found if isinstance(found, dict) else {}
    title = f"quota day from {day.get('start')} to {day.get('end')} ({day.get('timezone')})"
    rows = [
        [clip(str(item.get("profile")), 40), clip(str(item.get("model")), 40),
         *(_cell(item.get(name)) for name in _QUOTA_FIELDS)]
        for item in view["rows"]
        if isinstance(item, dict)
    ]  # fmt: skip
    if not rows:
        return f"{title}: no requests"
    return f"{title}\n\n{table(QUOTA_HEADERS, rows, right=range(2, len(QUOTA_HEADERS) - 1))}"


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)
