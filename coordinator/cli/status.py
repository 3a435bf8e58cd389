"""`coordinator status`: what running coordinators say about themselves, as a table or as JSON.

It asks over HTTP like any client: `GET /ready` for the summary, `GET /admin/children`
for the children, `GET /admin/usage/quota` for the quota day's use (none from a
coordinator too old to have it). Every failure of the transport or of the answer becomes
one `StatusError` here, whose message says what to do. Several coordinators (the shards
of one fleet) make one table, with a HOST column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from coordinator.cli.keys import KeyFileError, read_api_keys
from coordinator.cli.table import clip, table

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
    quota: dict[str, Any] = field(default_factory=dict)  # the body of GET /admin/usage/quota

    @property
    def children(self) -> list[dict[str, Any]]:
        return [child for child in self.listing.get("data", []) if isinstance(child, dict)]

    @property
    def host(self) -> str:
        """The address as a column shows it: host:port."""
        return urlsplit(self.url).netloc or self.url


@dataclass(frozen=True, slots=True)
class Fleet:
    """What several coordinators said, and the addresses that did not answer (url, why)."""

    statuses: tuple[Status, ...]
    failures: tuple[tuple[str, str], ...] = ()


def split_urls(given: Sequence[str]) -> list[str]:
    """--url given once or more, each perhaps comma-separated; duplicates dropped, order kept."""
    urls: list[str] = []
    for item in given:
        for url in item.split(","):
            url = _normalize(url) if url.strip() else ""
            if url and url not in urls:
                urls.append(url)
    if not urls:
        raise StatusError("--url is empty: give a coordinator's address, e.g. http://127.0.0.1:2048")
    return urls


def fetch_all(
    urls: Sequence[str],
    api_key: str | None = None,
    *,
    timeout: float = 5.0,
    transport: httpx.BaseTransport | None = None,
) -> Fleet:
    """Each coordinator's status; one that does not answer is a failure, not the end."""
    statuses: list[Status] = []
    failures: list[tuple[str, str]] = []
    for url in urls:
        try:
            statuses.append(fetch(url, api_key, timeout=timeout, transport=transport))
        except StatusError as exc:
            failures.append((url, exc.message))
    if not statuses:
        raise StatusError("\n".join(message for _, message in failures))
    return Fleet(tuple(statuses), tuple(failures))


def render_fleet(fleet: Fleet) -> str:
    """One coordinator as `render` shows it; several as one headline each, then ONE table
    with a HOST column, then their spares, cooldowns and drift, each line led by its host."""
    if len(fleet.statuses) == 1 and not fleet.failures:
        return render(fleet.statuses[0])
    lines = [headline(status) for status in fleet.statuses]
    lines += [f"coordinator at {url}: unreachable: {message}" for url, message in fleet.failures]
    total = sum(_count(status.summary, "total") for status in fleet.statuses)
    serving = sum(_count(status.summary, "serving") for status in fleet.statuses)
    lines.append(f"all {len(fleet.statuses)} answering: {serving}/{total} children serving")
    rows = [[status.host, *_row(child)] for status in fleet.statuses for child in status.children]
    text = "\n".join(lines)
    if rows:
        text += "\n\n" + table(("HOST", *HEADERS), rows, right={column + 1 for column in _NUMERIC})
    else:
        text += "\n\nno children"
    notes = [f"{status.host} {line}" for status in fleet.statuses for line in _notes(status)]
    if notes:
        text += "\n\n" + "\n".join(notes)
    return text


def _notes(status: Status) -> list[str]:
    children = status.children
    return [
        *spare_lines(children),
        *cooldown_lines(children),
        *quota_lines(status.quota),
        *settings_lines(children),
        *drift_lines(children),
    ]


def fleet_json(fleet: Fleet) -> str:
    """One coordinator as `to_json`; several as {"coordinators": [...], "unreachable": [...]}."""
    if len(fleet.statuses) == 1 and not fleet.failures:
        return to_json(fleet.statuses[0])
    coordinators = [
        {"url": status.url, **status.listing, "summary": status.summary, "quota": status.quota}
        for status in fleet.statuses
    ]
    unreachable = [{"url": url, "error": message} for url, message in fleet.failures]
    return json.dumps({"coordinators": coordinators, "unreachable": unreachable}, indent=2)


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
            quota = _get(client, "/admin/usage/quota", api_key, accept=(200,), missing_ok=True)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        raise StatusError(f"{url} is not an http:// or https:// URL; pass --url http://HOST:PORT") from None
    except httpx.HTTPError as exc:
        reason = f"no answer in {timeout:g}s" if isinstance(exc, httpx.TimeoutException) else _reason(exc)
        raise StatusError(f"no coordinator answers at {url}: is it running? ({reason})") from None
    if not isinstance(summary.get("status"), str) or not isinstance(listing.get("data"), list):
        raise StatusError(f"{url} answered, but not like a coordinator: is --url right?")
    return Status(url, summary, listing, quota)


def render(status: Status) -> str:
    """The headline, a blank line, one row per child, then spares, cooldowns and drift if any."""
    children = status.children
    if not children:
        return f"{headline(status)}\n\nno children"
    rows = [_row(child) for child in children]
    text = f"{headline(status)}\n\n{table(HEADERS, rows, right=_NUMERIC)}"
    sections = (
        spare_lines(children) + cooldown_lines(children),
        quota_lines(status.quota),
        settings_lines(children),
        drift_lines(children),
    )
    for section in sections:
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


def quota_lines(view: dict[str, Any]) -> list[str]:
    """One line per profile: its use of each model in the quota day, then its quota hits;
    only the models it used or that have a limit known.

    e.g. `alice: quota today replica-pro 37/50 left, mock 12 used; 1 quota hit, last 18:02:11Z`."""
    by_profile: dict[str, list[dict[str, Any]]] = {}
    for row in view.get("rows") or []:
        # A model neither used nor limited says nothing: left out.
        if isinstance(row, dict) and (row.get("requests") or row.get("quota_hits") or row.get("daily_limit")):
            by_profile.setdefault(_text(row.get("profile")), []).append(row)
    lines = []
    for name, rows in by_profile.items():
        parts = []
        for row in rows:
            model, limit, left = (
                clip(_text(row.get("model")), 60),
                row.get("daily_limit"),
                row.get("remaining"),
            )
            if isinstance(limit, int) and isinstance(left, int):
                parts.append(f"{model} {left}/{limit} left")
            else:
                parts.append(f"{model} {_text(row.get('requests'))} used")
        hits = sum(row.get("quota_hits") or 0 for row in rows if isinstance(row.get("quota_hits"), int))
        line = f"{name}: quota today {', '.join(parts)}"
        if hits:
            last = max((str(row["last_quota_hit"]) for row in rows if row.get("last_quota_hit")), default="-")
            line += f"; {hits} quota hit{'s' if hits > 1 else ''}, last {clip(last, 40)}"
        lines.append(line)
    day = _mapping(view.get("quota_day"))
    if lines and day.get("start"):
        lines.insert(0, f"quota day since {_text(day.get('start'))} ({_text(day.get('timezone'))})")
    return lines


def settings_lines(children: list[dict[str, Any]]) -> list[str]:
    """One line per profile whose settings file sets something (the proxy as the
    coordinator shows it: masked), e.g. `alice: settings proxy socks5://***@h:1080, models pro`."""
    lines = []
    for child in children:
        settings = _mapping(child.get("settings"))
        parts = [
            f"{key} {clip(_text(settings.get(key)), 80)}"
            for key in ("proxy", "locale", "timezone")
            if settings.get(key)
        ]
        models = settings.get("models")
        if isinstance(models, list):
            parts.append(f"models {clip(', '.join(str(model) for model in models), 120) or '(none)'}")
        weight = settings.get("weight")
        if isinstance(weight, int | float) and not isinstance(weight, bool) and weight != 1:
            parts.append(f"weight {weight:g}")
        limits = _mapping(settings.get("daily_limits"))
        if limits:
            parts.append("limits " + clip(", ".join(f"{m}={n}" for m, n in limits.items()), 120))
        if parts:
            lines.append(f"{_text(child.get('profile', child.get('id')))}: settings {', '.join(parts)}")
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
    shard = _mapping(summary.get("shard"))
    count = shard.get("count")
    where = ""
    if isinstance(count, int) and count > 1:
        skipped = _text(shard.get("skipped"))
        where = f" (shard {_text(shard.get('index'))}/{count}, {skipped} profiles skipped)"
    return f"coordinator at {status.url}{where}: {summary.get('status')}, " + ", ".join(parts)


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
    return json.dumps({**status.listing, "summary": status.summary, "quota": status.quota}, indent=2)


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


def _count(summary: dict[str, Any], key: str) -> int:
    value = _mapping(summary.get("children")).get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else clip(str(value), 200)


def _get(
    client: httpx.Client, path: str, api_key: str | None, accept: tuple[int, ...], *, missing_ok: bool = False
) -> dict[str, Any]:
    response = client.get(path)
    if missing_ok and response.status_code == 404:
        return {}
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
