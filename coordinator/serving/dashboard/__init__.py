"""The dashboard's files (`/dashboard`): a page, its script and its style, shipped as package
data and served as they are: no build step, nothing loaded from elsewhere.

The files hold no data and no secret, so they load without a key; the page asks for the
admin key when the coordinator has one, keeps it in the tab's sessionStorage, and sends it
as `Authorization: Bearer` on its own requests to `/admin`. Every file goes out with a
strict Content-Security-Policy: this port may face the internet.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

PAGE = "/dashboard"
CONFIG = "/dashboard/config.json"
# Path → (file in this package, content type).
FILES = {
    PAGE: ("index.html", "text/html; charset=utf-8"),
    PAGE + "/": ("index.html", "text/html; charset=utf-8"),
    PAGE + "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    PAGE + "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    PAGE + "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
# Scripts and styles from these files only (no inline script, no eval); pictures from here
# or the blob: URLs the script makes of screenshots; requests to this origin only.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
)


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: bytes


def load() -> dict[str, Asset]:
    """Every file by the path it is served at, read once when the server starts."""
    folder = resources.files(__name__)
    return {
        path: Asset(folder.joinpath(name).read_bytes(), content_type.encode())
        for path, (name, content_type) in FILES.items()
    }
