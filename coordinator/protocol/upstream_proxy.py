"""An account's own proxy, as a URL: parsed and checked the same way on both sides.

The coordinator reads it from a profile's settings file and hands it to the child in
the environment variable `PROXY_ENV` (never on the command line, which `ps` shows);
the child's capture proxy dials the site through it. The credentials never leave
`ProxyURL` but by `url()`: its repr and `masked()` leave them out, and an error about a
URL never quotes it. Stdlib only, like the rest of the contract.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Final

PROXY_ENV: Final = "CHILD_PROXY"
SCHEMES: Final = ("http", "https", "socks5", "socks5h")
# RFC 1929 gives a byte for each length; an HTTP proxy's Basic credentials get the same bound.
MAX_CREDENTIAL_BYTES: Final = 255
_MAX_URL = 2048
_LABEL = re.compile(r"^[A-Za-z0-9_-]{1,63}$")


class ProxyURLError(ValueError):
    """Why a proxy URL cannot be used; the message never quotes the URL or its credentials."""


@dataclass(frozen=True, slots=True)
class ProxyURL:
    scheme: str  # http, https (TLS to the proxy), socks5 (socks5h: the same, names resolved remotely)
    host: str
    port: int
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def has_credentials(self) -> bool:
        return self.username is not None

    @property
    def is_socks(self) -> bool:
        return self.scheme in ("socks5", "socks5h")

    def masked(self) -> str:
        """Scheme, host and port, with `***` where credentials are: safe to log and show."""
        return f"{self.scheme}://{'***@' if self.has_credentials else ''}{self._authority()}"

    def url(self) -> str:
        """The whole URL, credentials percent-encoded: for the child's environment only."""
        credentials = ""
        if self.username is not None:
            credentials = urllib.parse.quote(self.username, safe="")
            if self.password is not None:
                credentials += ":" + urllib.parse.quote(self.password, safe="")
            credentials += "@"
        return f"{self.scheme}://{credentials}{self._authority()}"

    def _authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> ProxyURL:
        """`scheme://[user[:password]@]host:port`, nothing after the port."""
        if not isinstance(text, str) or not text or len(text) > _MAX_URL:
            raise ProxyURLError(f"must be a URL of at most {_MAX_URL} characters")
        if any(ord(char) < 0x21 or ord(char) == 0x7F for char in text):
            raise ProxyURLError("must not hold spaces or control characters")
        try:
            parts = urllib.parse.urlsplit(text)
            port = parts.port
        except ValueError:
            raise ProxyURLError("is not a URL of the form scheme://[user:password@]host:port") from None
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise ProxyURLError("must start with http://, https://, socks5:// or socks5h://")
        host = parts.hostname
        if not host:
            raise ProxyURLError("has no host")
        if port is None or port == 0:
            raise ProxyURLError("needs a port (host:port)")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ProxyURLError("must end after host:port (no path, query or fragment)")
        username = urllib.parse.unquote(parts.username) if parts.username is not None else None
        password = urllib.parse.unquote(parts.password) if parts.password is not None else None
        if username == "" and password:
            raise ProxyURLError("has a password but no user name")
        if username == "":
            username = password = None
        for what, value in (("user name", username), ("password", password)):
            if value is not None and len(value.encode()) > MAX_CREDENTIAL_BYTES:
                raise ProxyURLError(f"has a {what} longer than {MAX_CREDENTIAL_BYTES} bytes")
        if scheme.startswith("socks5") and username is not None and not password:
            raise ProxyURLError("SOCKS5 credentials need a user name and a password (RFC 1929)")
        return cls(scheme, _host(host), port, username, password)


def _host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if len(host) > 253 or not all(_LABEL.match(label) for label in host.split(".")):
        raise ProxyURLError("has a host that is neither a name nor an IP address")
    return host.lower()
