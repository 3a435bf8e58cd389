"""API keys: which key a request carries, what it may reach, and whose request it is.

Two rings of keys. Client keys reach `/v1`; admin keys reach `/v1` and `/admin`. With no
admin key configured, the client keys guard `/admin` too (one ring, as before admin keys
existed); with no key at all, everything is open. A request's owner is a label of the
key that authorised it (`client-0`, `admin-1`: its ring and its place in it), so that
only that key, or an admin key, may cancel the request; the label is safe to log, the
key never is.

`KeyRing.check` is a plain function of the request's head (headers and path), so that
the server can decide before it reads a body.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from coordinator.settings import Settings

_ADMIN = "/admin"


@dataclass(frozen=True, slots=True)
class Grant:
    """What `KeyRing.check` decided: `status` 0 lets the request in; 401 or 403 refuses it."""

    status: int = 0
    # The label of the key that was offered and matched, None when no key was needed or matched.
    owner: str | None = None
    admin: bool = False

    @property
    def allowed(self) -> bool:
        return self.status == 0

    @property
    def code(self) -> str:
        return "permission_denied" if self.status == 403 else "invalid_api_key"

    @property
    def message(self) -> str:
        if self.status == 403:
            return "This key is a client key: it reaches /v1 only; /admin needs an admin key."
        return "Missing or wrong API key: send it as 'Authorization: Bearer KEY' (or 'X-API-Key: KEY')."

    @property
    def headers(self) -> tuple[tuple[bytes, bytes], ...]:
        # RFC 9110: a 401 names the scheme to use; a 403 is about rights, not credentials.
        return ((b"www-authenticate", b"Bearer"),) if self.status == 401 else ()


OPEN = Grant()


class KeyRing:
    """The accepted keys, as bytes, each with the label that stands for it in logs."""

    def __init__(self, client_keys: tuple[str, ...] = (), admin_keys: tuple[str, ...] = ()) -> None:
        # A key in both lists is an admin key: it is looked up in the admin ring first.
        self._keys = tuple(
            [(key.encode(), f"admin-{index}", True) for index, key in enumerate(admin_keys)]
            + [(key.encode(), f"client-{index}", False) for index, key in enumerate(client_keys)]
        )
        self.enabled = bool(self._keys)
        # The labels that stand for the keys (`--key-priority` names keys by them).
        self.labels = frozenset(label for _, label, _ in self._keys)
        self.separate_admin = bool(admin_keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        return cls(settings.api_keys, settings.admin_keys)

    def check(self, headers: dict[str, str], path: str) -> Grant:
        """Whether the key in `headers` may reach `path`, and whose it is.

        `headers` have lower-case names. No key, or a wrong one: 401. A client key on
        `/admin` when admin keys are set: 403, since the key is good but lacks the right.
        """
        if not self.enabled:
            return OPEN
        owner, admin = self._match(_offered(headers))
        if owner is None:
            return Grant(401)
        if self.separate_admin and not admin and _is_admin_path(path):
            return Grant(403, owner)
        return Grant(0, owner, admin)

    def _match(self, offered: bytes) -> tuple[str | None, bool]:
        # Compared with every key, in constant time: neither timing nor order says which is close.
        found: tuple[str | None, bool] = (None, False)
        for key, label, admin in self._keys:
            if hmac.compare_digest(offered, key) and offered and found[0] is None:
                found = (label, admin)
        return found


def may_cancel(grant: Grant, owner: str | None) -> bool:
    """Whether the caller of `grant` may cancel a request made by `owner`.

    The key that made the request may, and so may an admin key. With no keys configured
    both are None: anyone may cancel anything, as anyone may make requests.
    """
    return grant.admin or grant.owner == owner


def _offered(headers: dict[str, str]) -> bytes:
    authorization = headers.get("authorization", "")
    bearer = authorization[7:] if authorization[:7].lower() == "bearer " else ""
    # Header values arrive decoded as latin-1, so this encoding cannot fail.
    return (bearer.strip() or headers.get("x-api-key", "").strip()).encode("latin-1", "replace")


def _is_admin_path(path: str) -> bool:
    return path == _ADMIN or path.startswith(_ADMIN + "/")
