"""`coordinator status`: what a running coordinator says about itself, as a table or as JSON.

It asks over HTTP like any client: `GET /ready` for the summary, `GET /admin/children`
for the children. Every failure of the transport or of the answer becomes one
`StatusError` here, whose message says what to do.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from coordinator.cli.keys import KeyFileError, read_api_keys
from coordinator.cli.table import clip, table

DEFAULT_URL = "http://127.0.0.1:2048"
HEADERS = ("PROFILE", "STATE", "PID", "PORTS", "REQUEST", "SERVED", "RESTARTS", "IN STATE", "LAST ERROR")
_NUMERIC = {2, 5, 6, 7}
_ERROR_WIDTH = 60
_ERRNO = re.compile(r"^\[Errno [-\d]+\]\s*")


class StatusError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Status:
    url: str
    summary: dict[str, Any]  # the body of GET /ready
    listing: dict[str, Any]  # the body of GET /admin/children

    @property
    def children(self) -> list[dict[str, Any]]:
        return [child for child in self.listing.get("data", []) if isinstance(child, dict)]


def first_key(listed: str | None, file: Path | None = None) -> str | None:
    """The first API key of the server's setting: comma-separated keys, then a file's lines.

    The file is read only when no key is listed, as `run` would use the listed one first.
    """
    try:
        keys = read_api_keys(listed) or read_api_keys(None, file)
    except KeyFileError as exc:
        raise StatusError(str(exc)) from None
    return keys[0] if keys else None


def fetch(
    url: str,
    api_key: str | None = None,
    *,
    timeout: float = 5.0,
    transport: httpx.BaseTransport | None = None,
) -> Status:
    """The coordinator's summary and children, or a `StatusError` that says what went wrong."""
    url = _normalize(url)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=timeout, transport=transport) as client:
            summary = _get(client, "/ready", api_key, accept=(200, 503))
            listing = _get(client, "/admin/children", api_key, accept=(200,))
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        raise StatusError(f"{url} is not an http:// or https:// URL; pass --url http://HOST:PORT") from None
    except httpx.HTTPError as exc:
        reason = f"no answer in {timeout:g}s" if isinstance(exc, httpx.TimeoutException) else _reason(exc)
        raise StatusError(f"no coordinator answers at {url}: is it running? ({reason})") from None
    if not isinstance(summary.get("status"), str) or not isinstance(listing.get("data"), list):
        raise StatusError(f"{url} answered, but not like a coordinator: is --url right?")
    return Status(url, summary, listing)


def render(status: Status) -> str:
    """The headline, a blank line, one row per child, then spares, cooldowns and drift if any."""
    children = status.children
    if not children:
        return f"{headline(status)}\n\nno children"
    rows = [_row(child) for child in children]
    text = f"{headline(status)}\n\n{table(HEADERS, rows, right=_NUMERIC)}"
    for section in (spare_lines(children) + cooldown_lines(children), drift_lines(children)):
        if section:
            text += "\n\n" + "\n".join(section)
    return text


def spare_lines(children: list[dict[str, Any]]) -> list[str]:
    """One line per spare (--max-browsers) and why it waits."""
    return [
        f"{_text(child.get('profile', child.get('id')))}: spare, {_text(child.get('spare_reason'))}"
        for child in children
        if child.get("state") == "spare"
    ]


def cooldown_lines(children: list[dict[str, Any]]) -> list[str]:
    """One line per child cooling down, as a whole (with its reason) or for some models.

    e.g. `alice: cooldown (rate_limited) 4m` and `bob: out of quota for pro 3h, flash 12m`."""
    lines = []
    for child in children:
        name = _text(child.get("profile", child.get("id")))
        reason = child.get("cooldown_reason")
        if child.get("state") == "cooldown" and isinstance(reason, str):
            left = child.get("cooldown_seconds")
            lines.append(
                f"{name}: cooldown ({clip(reason, 40)}) {human_seconds(left) if left else 'until healthy'}"
            )
        models = _mapping(child.get("model_cooldowns"))
        cooling = sorted(
            ((clip(str(model), 60), left) for model, left in models.items() if isinstance(left, int | float)),
            key=lambda pair: -pair[1],
        )
        if cooling:
            listed = ", ".join(f"{model} {human_seconds(left)}" for model, left in cooling)
            lines.append(f"{name}: out of quota for {listed}")
    return lines


def drift_lines(children: list[dict[str, Any]]) -> list[str]:
    """One line per child whose page no longer matches some of the site's selectors."""
    lines = []
    for child in children:
        missing = child.get("selectors_missing")
        keys = [clip(key, 40) for key in missing if isinstance(key, str)] if isinstance(missing, list) else []
        if keys:
            name = _text(child.get("profile", child.get("id")))
            lines.append(f"{name}: selectors missing: {', '.join(keys)}")
    for child in children:
        from_dom = child.get("answers_from_dom")
        if isinstance(from_dom, int) and from_dom > 0:
            name = _text(child.get("profile", child.get("id")))
            lines.append(f"{name}: {from_dom} answers read from the page, not the network (see its log)")
    if any("selectors missing" in line for line in lines):
        lines.append(
            "the site's page changed: see `coordinator check-site --profile FILE`, fix with --site-config"
        )
    return lines


def headline(status: Status) -> str:
    summary = status.summary
    counts = _mapping(summary.get("children"))
    queue = _mapping(summary.get("queue"))
    parts = [
        f"{_text(counts.get('serving'))}/{_text(counts.get('total'))} children serving",
        f"queue {_text(queue.get('waiting'))}/{_text(queue.get('max'))} waiting{lane_counts(queue)}",
        f"{_text(summary.get('in_flight'))} in flight",
    ]
    return f"coordinator at {status.url}: {summary.get('status')}, " + ", ".join(parts)


def lane_counts(queue: dict[str, Any]) -> str:
    """` (high 1, low 4)`: the lanes in which requests wait (/health's queue.by_lane), or ""."""
    lanes = _mapping(queue.get("by_lane"))
    waiting = [
        f"{clip(str(lane), 20)} {count}"
        for lane, count in lanes.items()
        if isinstance(count, int) and not isinstance(count, bool) and count > 0
    ]
    return f" ({', '.join(waiting)})" if waiting else ""


def to_json(status: Status) -> str:
    """The body of /admin/children as it came, with the /ready summary under "summary"."""
    return json.dumps({**status.listing, "summary": status.summary}, indent=2)


def human_seconds(seconds: float | None) -> str:
    """12s, 3m, 2h, 4d: the largest whole unit, rounded down."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "-"
    whole = max(0, int(seconds))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if whole >= size:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def _row(child: dict[str, Any]) -> list[str]:
    ports = _mapping(child.get("ports"))
    return [
        _text(child.get("profile", child.get("id"))),
        _text(child.get("state")),
        _text(child.get("pid")),
        "/".join(_text(ports.get(kind)) for kind in ("api", "stream", "browser")),
        _text(child.get("request_id")),
        _text(child.get("served")),
        _text(child.get("restarts")),
        human_seconds(child.get("seconds_in_state")),
        clip(_text(child.get("last_error")), _ERROR_WIDTH),
    ]


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else clip(str(value), 200)


def _get(client: httpx.Client, path: str, api_key: str | None, accept: tuple[int, ...]) -> dict[str, Any]:
    response = client.get(path)
    if response.status_code == 403:
        raise StatusError(
            f"the coordinator took the key but {path} needs an admin key: "
            "pass --admin-key or set COORDINATOR_ADMIN_KEY"
        )
    if response.status_code == 401:
        if api_key:
            raise StatusError("the coordinator refused the API key: check --api-key or COORDINATOR_API_KEY")
        raise StatusError("the coordinator wants an API key: pass --api-key or set COORDINATOR_API_KEY")
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code not in accept or not isinstance(body, dict):
        said = _error_message(body)
        raise StatusError(
            f"{client.base_url.join(path)} answered HTTP {response.status_code}"
            f"{f' ({said})' if said else ''}: is --url a coordinator's address?"
        )
    return body


def _error_message(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return clip(message, 120) if isinstance(message, str) else ""


def _normalize(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


def _reason(exc: httpx.HTTPError) -> str:
    text = _ERRNO.sub("", str(exc)).strip()
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return "host not found"
    return clip(text, 120) if text else exc.__class__.__name__
