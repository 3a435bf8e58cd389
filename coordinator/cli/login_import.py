"""`coordinator login NAME --import FILE`: a browser's exported cookies made into a profile.

For a server with no display: sign in on a workstation, export the cookies (a
cookies.txt in Netscape format, or a cookie extension's JSON export), copy the file
over, and import it. Only Google's cookies are kept (google.com and its subdomains,
which include aistudio.google.com); a file without a live Google session cookie is
refused. The profile is written atomically with mode 600. Nothing here prints, logs or
puts in an error a cookie's value: messages name line numbers, cookie names and domains.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from coordinator.lifecycle.profiles import examine
from coordinator.protocol.writeback import write_atomically

KEPT_DOMAIN: Final = "google.com"
# The cookies of a signed-in Google session; any one of them live makes the file worth importing.
SESSION_COOKIES: Final = ("SID", "__Secure-1PSID", "__Secure-3PSID")
# Cookie extensions write Chrome's names; Playwright wants its three.
_SAME_SITE: Final = {"strict": "Strict", "lax": "Lax", "no_restriction": "None", "none": "None"}


class CookieFileError(Exception):
    """The file cannot become a profile; the message says why, with no cookie value in it."""


@dataclass(frozen=True, slots=True)
class Imported:
    path: Path
    kept: int
    domains: tuple[str, ...]  # of the kept cookies
    other_sites: int  # cookies of other sites, left out
    expired: int  # Google cookies already expired, left out


def import_cookies(source: Path, output: Path, *, now: float | None = None) -> Imported:
    """Read `source` (cookies.txt or a JSON export), write the profile `output`; raises CookieFileError."""
    try:
        text = source.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CookieFileError(f"cannot read {source}: {getattr(exc, 'strerror', None) or exc}") from None
    cookies = _from_json(text, source) if text.lstrip()[:1] in ("[", "{") else _from_netscape(text, source)
    moment = time.time() if now is None else now
    google = [c for c in cookies if _is_google(c["domain"])]
    # An expired cookie would be dropped by the browser anyway; keeping it only misleads.
    live = [c for c in google if c["expires"] == -1 or c["expires"] > moment]
    if not any(c["name"] in SESSION_COOKIES and c["value"] for c in live):
        raise CookieFileError(_no_session(source, google, live))
    output.parent.mkdir(parents=True, exist_ok=True)
    state = {"cookies": live, "origins": []}
    write_atomically(output, (json.dumps(state, indent=2) + "\n").encode())
    # The very check `coordinator run` makes of a profile file.
    if problem := examine(output).problem:
        output.unlink(missing_ok=True)
        raise CookieFileError(f"the profile made from {source} is not valid ({problem}); nothing was saved")
    return Imported(
        path=output,
        kept=len(live),
        domains=tuple(sorted({c["domain"] for c in live})),
        other_sites=len(cookies) - len(google),
        expired=len(google) - len(live),
    )


def summary(imported: Imported) -> str:
    """What was saved, for the terminal: counts and domains, never a value."""
    lines = [
        f"Saved {imported.path} (mode 600): {imported.kept} cookies of {KEPT_DOMAIN} and its subdomains "
        f"({', '.join(imported.domains)}).",
    ]
    if imported.other_sites:
        lines.append(f"Left out {imported.other_sites} cookies of other sites (only Google's are kept).")
    if imported.expired:
        lines.append(f"Left out {imported.expired} Google cookies that had already expired.")
    lines.append("Move it to auth_profiles/active/ to use it.")
    return "\n".join(lines)


def _is_google(domain: str) -> bool:
    bare = domain.lstrip(".").lower()
    return bare == KEPT_DOMAIN or bare.endswith("." + KEPT_DOMAIN)


def _no_session(source: Path, google: list[dict[str, Any]], live: list[dict[str, Any]]) -> str:
    names = " or ".join(SESSION_COOKIES)
    had = any(c["name"] in SESSION_COOKIES for c in google)
    if had and not any(c["name"] in SESSION_COOKIES for c in live):
        return (
            f"the Google session cookies in {source} ({names}) have expired: sign in again in the "
            "browser and export its cookies anew; nothing was saved"
        )
    return (
        f"{source} holds no Google session cookie ({names} of google.com): export the cookies of a "
        "browser signed in to aistudio.google.com, google.com's included; nothing was saved"
    )


def _from_netscape(text: str, source: Path) -> list[dict[str, Any]]:
    """cookies.txt: domain, include-subdomains, path, secure, expiry, name, value, tab-separated."""
    cookies = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip("\r\n")
        http_only = line.startswith("#HttpOnly_")
        if http_only:
            line = line[len("#HttpOnly_") :]
        elif not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) == 6:  # an empty value, its tab trimmed by some exporters
            fields.append("")
        if len(fields) < 7:
            raise CookieFileError(
                f"{source} line {number}: expected 7 tab-separated fields (domain, include subdomains, "
                f"path, secure, expiry, name, value), found {len(fields)}; is it a cookies.txt?"
            )
        domain, subdomains, path, secure, expiry, name = fields[:6]
        try:
            expires = float(expiry)
        except ValueError:
            raise CookieFileError(f"{source} line {number}: the expiry is not a number") from None
        cookies.append(
            _cookie(
                name=name,
                value="\t".join(fields[6:]),  # a value holding a tab: what follows the name is the value
                domain=domain,
                host_only=subdomains.upper() != "TRUE",
                path=path or "/",
                expires=expires if expires > 0 else -1,  # 0: a session cookie
                http_only=http_only,
                secure=secure.upper() == "TRUE",
                same_site=None,  # cookies.txt does not carry it
            )
        )
    return cookies


def _from_json(text: str, source: Path) -> list[dict[str, Any]]:
    """A list of cookie objects (EditThisCookie, Cookie-Editor), or a storage state's `cookies`."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise CookieFileError(f"{source} is not valid JSON ({exc})") from None
    entries = document.get("cookies") if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise CookieFileError(f"{source}: expected a list of cookies, or an object with a 'cookies' list")
    return [_json_cookie(entry, index, source) for index, entry in enumerate(entries)]


def _json_cookie(entry: Any, index: int, source: Path) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise CookieFileError(f"{source}: cookie [{index}] is not an object")
    for field in ("name", "value", "domain"):
        if not isinstance(entry.get(field), str):
            raise CookieFileError(f"{source}: cookie [{index}] has no string '{field}'")
    expiry: Any = entry.get("expirationDate", entry.get("expires"))
    expires = float(expiry) if _is_number(expiry) and entry.get("session") is not True else -1.0
    path = entry.get("path")
    host_only = entry.get("hostOnly")
    return _cookie(
        name=entry["name"],
        value=entry["value"],
        domain=entry["domain"],
        host_only=host_only if isinstance(host_only, bool) else not entry["domain"].startswith("."),
        path=path if isinstance(path, str) and path else "/",
        expires=expires if expires > 0 else -1,
        http_only=entry.get("httpOnly") is True,
        secure=entry.get("secure") is True,
        same_site=entry.get("sameSite"),
    )


def _cookie(
    *,
    name: str,
    value: str,
    domain: str,
    host_only: bool,
    path: str,
    expires: float,
    http_only: bool,
    secure: bool,
    same_site: object,
) -> dict[str, Any]:
    """A cookie in Playwright's storage-state shape."""
    bare = domain.lstrip(".")
    # A __Host- cookie is host-only by definition: Chromium refuses one set for subdomains.
    host_only = host_only or name.startswith("__Host-")
    # Playwright marks a cookie for the subdomains too by a leading dot, a host-only one by none.
    site = _SAME_SITE.get(same_site.lower(), "Lax") if isinstance(same_site, str) else "Lax"
    if site == "None" and not secure:
        site = "Lax"  # Chromium refuses SameSite=None without Secure, and Lax is its default
    return {
        "name": name,
        "value": value,
        "domain": bare if host_only else f".{bare}",
        "path": path,
        "expires": expires,
        "httpOnly": http_only,
        "secure": secure,
        "sameSite": site,
    }


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
