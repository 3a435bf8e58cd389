"""CORS: which browser pages may call the API, their preflights, and the headers of the answers.

Off unless `--cors-origins` names origins (or `*`). A browser sends a preflight
(`OPTIONS` with `Origin` and `Access-Control-Request-Method`) without any key, before a
request that carries `Authorization`; so a preflight is answered here, before keys are
checked. An origin that is not allowed gets a 403 without any `Access-Control-Allow-*`
header: a browser fails the request either way (the Fetch standard needs both an ok
status and the allow headers), and the status tells a person with curl why. No
`Access-Control-Allow-Credentials`: clients send their key in a header, never a cookie.

Header pairs are bytes, lower-case names, as the server writes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Headers = tuple[tuple[bytes, bytes], ...]

ANY = "*"
METHODS = ("GET", "HEAD", "POST")
# What the API reads, whatever the page asks for; the openai SDKs also send x-stainless-*
# and openai-* headers, which a preflight asks for by name and gets, within the bounds below.
ALLOWED_HEADERS = ("authorization", "content-type", "x-api-key", "x-request-id")
EXPOSED_HEADERS = (
    b"x-request-id, x-coordinator-child, x-coordinator-tools, x-coordinator-thinking-level, retry-after"
)
# Seconds a browser may reuse a preflight's answer (Chromium caps it at 7200).
MAX_AGE = b"600"
_MAX_ASKED = 32
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]{1,64}")  # RFC 9110 token, lower-cased
_ORIGIN = re.compile(r"(https?)://([a-z0-9.\-]+|\[[0-9a-f:.]+\])(:[0-9]{1,5})?")


@dataclass(frozen=True, slots=True)
class Preflight:
    """The answer to a preflight: 204 with the allow headers, or 403 and why."""

    status: int
    headers: Headers
    refusal: str | None = None  # for the 403's error body


def parse_origins(text: str | None) -> tuple[str, ...]:
    """The origins of `--cors-origins` (comma-separated, or `*`), lower-cased; ValueError names a bad one."""
    origins = [origin.strip().lower().rstrip("/") for origin in (text or "").split(",") if origin.strip()]
    if ANY in origins:
        if len(origins) > 1:
            raise ValueError("--cors-origins is either '*' or a list of origins, not both")
        return (ANY,)
    for origin in origins:
        if _ORIGIN.fullmatch(origin) is None:
            raise ValueError(
                f"--cors-origins: {origin!r} is not an origin: write scheme://host[:port], "
                "e.g. https://chat.example.com or http://localhost:3000, with no path"
            )
    return tuple(dict.fromkeys(origins))


class Cors:
    """The CORS policy of a run: `preflight` answers preflights, `headers` decorates answers."""

    def __init__(self, origins: tuple[str, ...] = ()) -> None:
        self.enabled = bool(origins)
        self.any_origin = ANY in origins
        self.origins = frozenset(origins)
        self._methods = ", ".join(METHODS).encode()
        self._allow_headers = ", ".join(ALLOWED_HEADERS).encode()
        # With a list of origins, an answer differs by Origin, so caches must key on it.
        self._vary: Headers = () if self.any_origin or not self.enabled else ((b"vary", b"origin"),)

    def allows(self, origin: str | None) -> bool:
        if not self.enabled or not origin:
            return False
        return self.any_origin or origin.lower() in self.origins

    def preflight(self, method: str, headers: dict[str, str]) -> Preflight | None:
        """The answer to a preflight, or None when this is no preflight (or CORS is off).

        `headers` have lower-case names. None lets the request take its usual route (an
        `OPTIONS` there is a 405, as without CORS).
        """
        origin = headers.get("origin")
        asked_method = headers.get("access-control-request-method")
        if not self.enabled or method != "OPTIONS" or not origin or asked_method is None:
            return None
        if not self.allows(origin):
            return Preflight(
                403,
                self._vary,
                f"The origin {origin[:200]!r} may not call this API; the coordinator's --cors-origins "
                "lists those that may.",
            )
        if asked_method.strip().upper() not in METHODS:
            return Preflight(403, self._vary, f"Only {', '.join(METHODS)} are allowed from a browser page.")
        return Preflight(
            204,
            (
                *self._allow_origin(origin),
                (b"access-control-allow-methods", self._methods),
                (b"access-control-allow-headers", self._headers_for(headers)),
                (b"access-control-max-age", MAX_AGE),
            ),
        )

    def headers(self, origin: str | None) -> Headers:
        """The headers to add to an answer to a request from `origin` (its Origin header)."""
        if not self.allows(origin):
            return self._vary
        assert origin is not None
        return (*self._allow_origin(origin), (b"access-control-expose-headers", EXPOSED_HEADERS))

    def _allow_origin(self, origin: str) -> Headers:
        # `*` needs no Vary; a listed origin is echoed as the browser sent it.
        if self.any_origin:
            return ((b"access-control-allow-origin", b"*"),)
        return ((b"access-control-allow-origin", origin.encode("latin-1")), *self._vary)

    def _headers_for(self, headers: dict[str, str]) -> bytes:
        """Ours, and the names the page asked for when they are few and well formed."""
        listed = headers.get("access-control-request-headers", "").split(",")
        asked = [name for name in (n.strip().lower() for n in listed) if name and name not in ALLOWED_HEADERS]
        if not asked or len(asked) > _MAX_ASKED or not all(_TOKEN.fullmatch(name) for name in asked):
            return self._allow_headers
        return self._allow_headers + b", " + ", ".join(dict.fromkeys(asked)).encode()
