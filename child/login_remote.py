"""`coordinator login NAME --remote`: what a sign-in on a server with no display needs.

The login browser runs headless with its remote debugging port on 127.0.0.1 only; the
operator reaches it from a workstation through an SSH tunnel and drives the page from
Chrome's DevTools (`chrome://inspect`), whose screencast shows the page and takes clicks
and keys. This module picks the port, waits until the browser listens on it, and says
how to get there.
"""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.request

PORT_OPEN_SECONDS = 15.0


def free_port() -> int:
    """A port free on 127.0.0.1 now, chosen by the kernel."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_until_listening(port: int, timeout: float = PORT_OPEN_SECONDS) -> bool:
    """True once the browser's debugging endpoint answers on 127.0.0.1:`port`, False at the deadline
    (the port was taken, or the browser did not open it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(_answers, port):
            return True
        await asyncio.sleep(0.1)
    return False


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=1.0) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def instructions(port: int, site: str, timeout: float) -> str:
    """How to reach the login browser from a workstation, for the terminal."""
    return "\n".join(
        [
            f"The login browser runs headless; its debugging port is 127.0.0.1:{port} on this machine.",
            "From your workstation:",
            f"  1. ssh -N -L {port}:127.0.0.1:{port} THIS_HOST",
            f"  2. in Chrome, open chrome://inspect → Configure… → add localhost:{port};",
            f"     the sign-in page ({site}) shows under Remote Target: click 'inspect'",
            f"     (or open http://localhost:{port}/json/list and follow its devtoolsFrontendUrl)",
            "  3. sign in in the DevTools window's screencast of the page.",
            f"The profile is saved as soon as the signed-in page appears (waiting {timeout:g}s at most);",
            "press Enter here to save it as it is now.",
        ]
    )


def without_headless(user_agent: str) -> str:
    """The browser's user agent as a windowed Chrome would say it: sign-in pages may turn away
    one that names itself headless."""
    return user_agent.replace("HeadlessChrome/", "Chrome/")
