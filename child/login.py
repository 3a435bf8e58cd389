"""`coordinator login`: a browser on the site's sign-in page, saved as a profile once logged in.

Run by the coordinator's CLI as `python -m child.login`, so that the coordinator holds
no browser code. The browser opens with a window (unless --headless) on the site's
new-chat page, which sends a logged-out visitor to sign in. As soon as the prompt input
appears (the session is logged in), or when the user presses Enter, the context's
storage state is written to the output file atomically with mode 600: it holds session
cookies. With --remote (a server with no display) the browser runs headless and the
operator signs in through its debugging port (`child.login_remote`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
from pathlib import Path

from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from playwright.async_api import Error as PlaywrightError

from child import login_remote
from child.engines.base import EngineConfigError
from child.engines.browser import BrowserOptions, create_launcher
from child.site.config import SiteConfigError, load_site_config
from coordinator.protocol.link import EXIT_CONFIG
from coordinator.protocol.writeback import write_atomically


async def login(
    output: Path,
    *,
    site_url: str | None,
    site_config: Path | None,
    options: BrowserOptions,
    timeout: float,
    remote: bool = False,
) -> bool:
    """True once the storage state of a logged-in session is saved to `output`."""
    config = load_site_config(site_config, site_url)
    launcher = create_launcher("chromium", options, os.environ)
    async with async_playwright() as playwright:
        browser = await launcher.launch(playwright)
        try:
            context = await browser.new_context()
            page = await context.new_page()
            if remote:
                context, page = await _as_windowed(browser, context, page)
                if not await login_remote.wait_until_listening(options.port):
                    raise LoginError(f"the browser did not open its debugging port {options.port} (taken?)")
            await page.goto(config.new_chat_url)
            if remote:
                print(login_remote.instructions(options.port, config.url, timeout), flush=True)
            else:
                print(f"Sign in in the browser window ({config.url}); the profile is saved once you are in.")
                print("Press Enter to save it as it is now.", flush=True)
            logged_in: asyncio.Future[object] = asyncio.ensure_future(
                page.wait_for_selector(config.selectors["prompt"], timeout=timeout * 1000)
            )
            enter = _enter_pressed()
            waiting: set[asyncio.Future[object] | asyncio.Future[None]] = {logged_in, enter}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            ok = logged_in.done() and logged_in.exception() is None
            if not ok and not enter.done():
                return False
            logged_in.cancel()
            state = await context.storage_state()
            output.parent.mkdir(parents=True, exist_ok=True)
            # A temporary file created 600, renamed over the profile: never readable by others,
            # never half written.
            write_atomically(output, (json.dumps(state, indent=2) + "\n").encode())
            return True
        finally:
            await browser.close()
            await launcher.close()


class LoginError(Exception):
    pass


async def _as_windowed(browser: Browser, context: BrowserContext, page: Page) -> tuple[BrowserContext, Page]:
    """A context whose user agent does not say headless (a sign-in page may refuse one that does)."""
    agent = await page.evaluate("navigator.userAgent")
    if not isinstance(agent, str) or login_remote.without_headless(agent) == agent:
        return context, page
    await context.close()
    context = await browser.new_context(user_agent=login_remote.without_headless(agent))
    return context, await context.new_page()


def _enter_pressed() -> asyncio.Future[None]:
    """Resolves when the user presses Enter; never, when there is no terminal (EOF)."""
    loop = asyncio.get_running_loop()
    pressed: asyncio.Future[None] = loop.create_future()

    def press() -> None:
        if not pressed.done():
            pressed.set_result(None)

    def read() -> None:
        if sys.stdin.readline():
            loop.call_soon_threadsafe(press)

    # A daemon thread: a read still blocked on the terminal must not keep the process alive.
    threading.Thread(target=read, daemon=True).start()
    return pressed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m child.login", description=__doc__)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--site-url")
    parser.add_argument("--site-config", type=Path)
    parser.add_argument("--browser-path")
    parser.add_argument("--browser-port", type=int, default=9221, help="0: a free one")
    parser.add_argument("--headless", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--remote", action="store_true", help="headless, signed in over its debug port")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the sign-in")
    args = parser.parse_args(argv)
    port = args.browser_port or login_remote.free_port()
    headless = args.headless or args.remote
    options = BrowserOptions(port=port, headless=headless, executable=args.browser_path)
    try:
        saved = asyncio.run(
            login(args.output, site_url=args.site_url, site_config=args.site_config, options=options,
                  timeout=args.timeout, remote=args.remote)
        )  # fmt: skip
    except (EngineConfigError, SiteConfigError) as exc:
        print(f"login: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except LoginError as exc:
        print(f"login: {exc}", file=sys.stderr)
        return 1
    except PlaywrightError as exc:
        print(f"login: the browser failed: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    if not saved:
        print("login: not signed in before the timeout; nothing was saved", file=sys.stderr)
        return 1
    print(f"Saved {args.output}. Move it to auth_profiles/active/ to use it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
