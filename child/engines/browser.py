"""The browser engines: a real browser logged in with the profile, driving the site.

Chromium and Camoufox differ only in how the browser is found and launched (a
`Launcher`); everything after that (context from the storage state, the page, the
site driver, noticing a dead browser) is `BrowserEngine`, shared. Each browser's
remote endpoint listens on the child's browser port, on 127.0.0.1 only, so an operator
can attach to a child's live page.

The browser runs in the child's process group, so the coordinator's group kill takes it
down. A browser that crashes or disconnects turns the engine `broken` and the child
exits, to be restarted, rather than limping on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shlex
import shutil
import ssl
import subprocess
import sys
import tempfile
from collections.abc import AsyncGenerator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import certifi
import psutil
import structlog
from playwright.async_api import Browser, BrowserContext, Playwright, async_playwright

from child.capture.ca import CAError, CertificateAuthority
from child.capture.exchange import NetworkCapture
from child.capture.proxy import PROXY_USER, CaptureProxy, Target
from child.engines.base import (
    AuthExpired,
    EngineBroken,
    EngineConfigError,
    EngineError,
    EngineStarting,
    EngineState,
    EngineStatus,
    Prompt,
    QuotaExhausted,
    RateLimited,
)
from child.engines.profile_writer import ProfileWriter, WriterState
from child.engines.quota import QuotaBook
from child.site.config import SiteConfig, SiteConfigError, load_site_config
from child.site.driver import AIStudio
from child.site.tools import plan_tools
from coordinator.protocol.link import AnswerEvent
from coordinator.protocol.upstream_proxy import ProxyURL

if TYPE_CHECKING:
    from child.settings import ChildSettings

log = structlog.get_logger("child.engines.browser")

# Playwright passes `--disable-features=<these>` itself, and Chromium keeps only the last
# --disable-features switch: a list of our own must repeat them.
PLAYWRIGHT_DISABLED_FEATURES = (
    "AvoidUnnecessaryBeforeUnloadCheckSync",
    "BoundaryEventDispatchTracksNodeRemoval",
    "DestroyProfileOnBrowserClose",
    "DialMediaRouteProvider",
    "GlobalMediaControls",
    "HttpsUpgrades",
    "LensOverlay",
    "MediaRouter",
    "PaintHolding",
    "ThirdPartyStoragePartitioning",
    "BlockOriginHeaderModificationOnRedirect",
    "Translate",
    "AutoDeElevate",
    "OptimizationHints",
)
# Processes and pages a headless automation browser never needs (the omnibox pop-up page,
# preloaded even headless, is ~80 MB alone).
OUR_DISABLED_FEATURES = (
    "WebUIOmniboxPopup",
    "WebUIOmniboxFullPopup",
    "WebUIOmniboxAimPopup",
    "site-per-process",
    "IsolateOrigins",
    "SpareRendererForSitePerProcess",
    "BackForwardCache",
    "AudioServiceOutOfProcess",
    "CertificateTransparencyComponentUpdater",
    "AutofillServerCommunication",
    "InterestFeedContentSuggestions",
    "PrivacySandboxSettings4",
    "MediaSessionService",
)
# Chromium as root in a container needs --no-sandbox; the rest keep it quiet on a closed
# network and small: one page needs one renderer, and the GPU and network services can live
# in the browser process (bench/browser_memory.py measured each flag).
CHROMIUM_ARGS = (
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--disable-software-rasterizer",
    "--in-process-gpu",
    "--disable-dev-shm-usage",
    "--renderer-process-limit=1",
    "--process-per-site",
    "--disable-site-isolation-trials",
    "--enable-low-end-device-mode",
    "--disable-features=" + ",".join((*PLAYWRIGHT_DISABLED_FEATURES, *OUR_DISABLED_FEATURES)),
    "--enable-features=CDPScreenshotNewSurface,NetworkServiceInProcess2",
)
# A screenshot for the dashboard: how long the page may take to render one.
SCREENSHOT_SECONDS = 5
SYSTEM_CHROMIUMS = ("/usr/bin/chromium", "/usr/lib/chromium/chromium", "/usr/bin/chromium-browser")
# The old headless shell: no browser UI behind the page, about 80 MB less per child than the
# full Chromium run headless (docs/benchmarks.md). Debian's package; the binary itself, not
# /usr/bin's wrapper script, which would add a shell process per browser.
SYSTEM_HEADLESS_SHELLS = ("/usr/lib/chromium/chromium-headless-shell",)
INSTALL_ADVICE = (
    "install a browser: `camoufox fetch` (the production engine), or Chromium "
    "(on Debian as root: `apt-get install -y chromium`), or pass --browser-path"
)


@dataclass(frozen=True, slots=True)
class BrowserOptions:
    port: int  # the browser's remote endpoint, 127.0.0.1 only
    headless: bool = True
    executable: str | None = None  # --browser-path / COORDINATOR_BROWSER_PATH
    # The capture CA's key hash: Chromium accepts certificates under that CA, and no others.
    trusted_spki: str | None = None
    # The profile's settings: the browser context's locale and IANA time zone (None: as is).
    locale: str | None = None
    timezone: str | None = None


class Launcher(Protocol):
    name: str
    options: BrowserOptions
    # True when the browser cannot be told to trust the capture's CA alone (Firefox).
    ignores_certificate_errors: bool

    async def launch(self, playwright: Playwright) -> Browser: ...

    def browser_pid(self) -> int | None: ...

    async def close(self) -> None: ...


# Playwright's driver is a Node.js process per child; a small heap and V8 tuned for size
# take about 40 MB off it (bench/browser_memory.py). Node refuses the V8 flags in
# NODE_OPTIONS, so they go on its command line through a wrapper the driver is started as.
DRIVER_NODE_OPTIONS = "--max-old-space-size=128 --max-semi-space-size=1 --v8-pool-size=1"
DRIVER_V8_FLAGS = "--optimize-for-size --lite-mode --single-threaded-gc"


@contextlib.contextmanager
def lean_driver() -> Iterator[None]:
    """Start Playwright's driver inside this block with a lean Node.js (the driver reads the
    environment of the process that starts it)."""
    from playwright._impl._driver import compute_driver_executable

    node = compute_driver_executable()[0]
    saved = {name: os.environ.get(name) for name in ("NODE_OPTIONS", "PLAYWRIGHT_NODEJS_PATH")}
    with tempfile.TemporaryDirectory(prefix="coordinator-node-") as folder:
        wrapper = Path(folder) / "node"
        wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(node)} {DRIVER_V8_FLAGS} "$@"\n')
        wrapper.chmod(0o700)
        os.environ["NODE_OPTIONS"] = DRIVER_NODE_OPTIONS
        os.environ["PLAYWRIGHT_NODEJS_PATH"] = str(wrapper)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def find_chromium(explicit: str | None, environ: Mapping[str, str], *, headless: bool = True) -> str | None:
    """The Chromium to run: the flag, the environment, then a headless shell (when headless),
    then a full Chromium, each from Playwright's own install first, then the system's."""
    for candidate in (explicit, environ.get("COORDINATOR_BROWSER_PATH")):
        if candidate:
            return candidate if Path(candidate).exists() else None
    if headless:
        shell = _playwright_browser("chromium_headless_shell-*/chrome-linux/headless_shell")
        shell = shell or next((p for p in SYSTEM_HEADLESS_SHELLS if Path(p).exists()), None)
        if shell:
            return shell
    bundled = _playwright_browser("chromium-*/chrome-linux/chrome")
    if bundled:
        return bundled
    for path in SYSTEM_CHROMIUMS:
        if Path(path).exists():
            return path
    return shutil.which("chromium")


def _playwright_browser(pattern: str) -> str | None:
    cache = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH", Path.home() / ".cache" / "ms-playwright"))
    found = sorted(cache.glob(pattern))
    return str(found[-1]) if found else None


def launch_args() -> list[str]:
    """The flags every Chromium we start runs with: quiet on a closed network, unsandboxed as root."""
    return [*CHROMIUM_ARGS, "--no-sandbox"] if os.geteuid() == 0 else list(CHROMIUM_ARGS)


def chromium_args(options: BrowserOptions) -> list[str]:
    args = [*launch_args(), f"--remote-debugging-port={options.port}", "--remote-debugging-address=127.0.0.1"]
    if options.trusted_spki:
        args.append(f"--ignore-certificate-errors-spki-list={options.trusted_spki}")
    return args


class ChromiumLauncher:
    name = "chromium"
    ignores_certificate_errors = False

    def __init__(self, options: BrowserOptions, executable: str) -> None:
        self.options = options
        self.executable = executable

    async def launch(self, playwright: Playwright) -> Browser:
        return await playwright.chromium.launch(
            executable_path=self.executable,
            headless=self.options.headless,
            args=chromium_args(self.options),
        )

    def browser_pid(self) -> int | None:
        # The browser's main process: the one with our debugging port and no --type (renderers have one).
        flag = f"--remote-debugging-port={self.options.port}"
        for process in psutil.Process().children(recursive=True):
            try:
                cmdline = process.cmdline()
            except psutil.Error:
                continue
            if flag in cmdline and not any(arg.startswith("--type=") for arg in cmdline):
                pid: int = process.pid
                return pid
        return None

    async def close(self) -> None:
        return None


def camoufox_installed() -> bool:
    try:
        from camoufox.pkgman import installed_verstr

        installed_verstr()
    except Exception:
        return False
    return True


def camoufox_server_options(options: BrowserOptions) -> dict[str, object]:
    """What the Camoufox Playwright server is launched with (the server prints its endpoint).

    The profile's locale and time zone go into its fingerprint too, and its GeoIP stays
    off: the account's proxy is behind the capture, where Camoufox cannot see its address.
    (Not run here: Camoufox cannot be installed on the test machines.)"""
    found: dict[str, object] = {
        "headless": options.headless,
        "port": options.port,
        "ws_path": "camoufox",
        "humanize": False,
    }
    if options.locale:
        found["locale"] = options.locale
        found["geoip"] = False
    if options.timezone:
        found["config"] = {"timezone": options.timezone}
    return found


class CamoufoxLauncher:
    """Camoufox's own Playwright server on the browser port; the child connects to it."""

    name = "camoufox"
    # Juggler has no per-CA trust: a Firefox context takes the capture's certificate only
    # by ignoring certificate errors (the passed-through hosts still go end to end).
    ignores_certificate_errors = True

    def __init__(self, options: BrowserOptions) -> None:
        self.options = options
        self.server: subprocess.Popen[bytes] | None = None

    async def launch(self, playwright: Playwright) -> Browser:
        script = (
            "import json, sys; from camoufox.server import launch_server; "
            "launch_server(**json.loads(sys.argv[1]))"
        )

        # Same process group as the child: the coordinator's group kill reaches it.
        self.server = subprocess.Popen(
            [sys.executable, "-c", script, json.dumps(camoufox_server_options(self.options))],
            stdout=subprocess.DEVNULL,
        )
        endpoint = f"ws://127.0.0.1:{self.options.port}/camoufox"
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            try:
                return await playwright.firefox.connect(endpoint)
            except Exception:
                if self.server.poll() is not None or asyncio.get_running_loop().time() > deadline:
                    raise EngineBroken("the Camoufox server did not start; see the child's log") from None
                await asyncio.sleep(0.5)

    def browser_pid(self) -> int | None:
        return self.server.pid if self.server is not None else None

    async def close(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            await asyncio.to_thread(self.server.wait, 10)


def create_launcher(engine: str, options: BrowserOptions, environ: Mapping[str, str]) -> Launcher:
    """The launcher for `engine` (camoufox, chromium, auto), or EngineConfigError saying what to install."""
    if engine in ("camoufox", "auto") and camoufox_installed():
        return CamoufoxLauncher(options)
    if engine == "camoufox":
        raise EngineConfigError(
            "Camoufox's browser is not installed: run `camoufox fetch`, or use --engine chromium"
        )
    executable = find_chromium(options.executable, environ, headless=options.headless)
    if executable is None:
        if engine == "chromium" and (options.executable or environ.get("COORDINATOR_BROWSER_PATH")):
            raise EngineConfigError(
                f"no browser at {options.executable or environ['COORDINATOR_BROWSER_PATH']}"
            )
        raise EngineConfigError(f"no browser found for --engine {engine}: {INSTALL_ADVICE}")
    return ChromiumLauncher(options, executable)


class BrowserEngine:
    """A browser, one context made from the profile's storage state, one page, one site."""

    def __init__(
        self,
        launcher: Launcher,
        site: AIStudio,
        writer: ProfileWriter,
        capture: CaptureProxy,
        capture_port: int,
    ) -> None:
        self.name = launcher.name
        self.launcher = launcher
        self.site = site
        self.writer = writer
        self.capture = capture
        self.capture_port = capture_port
        self.quota = QuotaBook()
        self._writing: asyncio.Task[None] | None = None
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._context: BrowserContext | None = None
        self._state = EngineState.STARTING
        self._detail = "launching the browser"
        self._cooldown_until = 0.0
        self._closing = False
        self._browser_pid: int | None = None

    async def start(self) -> None:
        await self.capture.start(self.capture_port)
        with lean_driver():  # the wrapper is needed only while the driver starts
            self._playwright = await async_playwright().start()
        self._browser = await self.launcher.launch(self._playwright)
        self._browser.on("disconnected", lambda _: self._broken("the browser disconnected or crashed"))
        self._browser_pid = self.launcher.browser_pid()
        self._detail = "opening the site"
        self._context = await self._browser.new_context(**self._context_options())
        page = await self._context.new_page()
        try:
            await self.site.open(page)
        except AuthExpired as exc:
            self._set(EngineState.AUTH_EXPIRED, exc.message)
            return
        self._set(EngineState.READY, f"{self.site.config.url} open")
        if self.writer.state is WriterState.ACTIVE:
            self._writing = asyncio.create_task(self.writer.run(self._context), name="profile-writer")

    def _context_options(self) -> dict[str, Any]:
        options = self.launcher.options
        return {
            # Read once through the writer: it replaces only the version the context came from.
            "storage_state": self.writer.read(),
            # All of the page's traffic takes the capture's path; it decrypts one host only.
            "proxy": {
                "server": f"http://127.0.0.1:{self.capture_port}",
                "username": PROXY_USER,
                "password": self.capture.password,
            },
            "ignore_https_errors": self.launcher.ignores_certificate_errors,
            **({"locale": options.locale} if options.locale else {}),
            **({"timezone_id": options.timezone} if options.timezone else {}),
        }

    async def close(self) -> None:
        self._closing = True
        if self._writing is not None:
            self._writing.cancel()
        alive = self._browser is not None and self._browser.is_connected()
        if self._context is not None and alive and self._state is not EngineState.AUTH_EXPIRED:
            with contextlib.suppress(Exception):  # a dead browser has nothing to save
                await asyncio.wait_for(self.writer.write(self._context, "shutdown"), 5)
        for closing in (self._context, self._browser):
            if closing is not None:
                try:
                    await asyncio.wait_for(closing.close(), 10)
                except Exception as exc:  # a dead browser cannot be closed politely
                    log.warning("browser_close_failed", error=type(exc).__name__)
        await self.launcher.close()
        if self._playwright is not None:
            await self._playwright.stop()
        await self.capture.close()

    def status(self) -> EngineStatus:
        if (
            self._state is EngineState.QUOTA_EXHAUSTED
            and asyncio.get_running_loop().time() >= self._cooldown_until
        ):
            self._set(EngineState.READY, "quota cooldown over")
        connected = self._browser.is_connected() if self._browser is not None else None
        remaining = int(self._cooldown_until - asyncio.get_running_loop().time()) + 1
        return EngineStatus(
            state=self._state,
            detail=self._detail,
            browser_pid=self._browser_pid,
            browser_connected=connected,
            retry_after=remaining if self._state is EngineState.QUOTA_EXHAUSTED else None,
            selectors_missing=self.site.selectors_missing,
            answer_source=self.site.answers.last.value if self.site.answers.last else None,
            answers_from_dom=self.site.answers.dom,
            quota=self.quota.remaining(),
        )

    def models(self) -> tuple[str, ...]:
        return self.site.models

    def carrying(self, prompt: Prompt) -> dict[str, str]:
        return plan_tools(prompt.options).headers

    async def screenshot(self) -> bytes:
        """The page as Chromium (or Firefox) renders it now; at most SCREENSHOT_SECONDS."""
        page = self.site.page
        if page is None or page.is_closed():
            raise EngineStarting(f"no page to show yet: {self._detail}")
        try:
            # Playwright's own timeout, and ours around it: a hung renderer must not hold the route.
            async with asyncio.timeout(SCREENSHOT_SECONDS + 1):
                return await page.screenshot(type="png", timeout=SCREENSHOT_SECONDS * 1000)
        except Exception as exc:  # a page mid-navigation or a dead browser: no picture this time
            raise EngineBroken(f"the page could not be shot: {type(exc).__name__}") from None

    async def generate(self, prompt: Prompt) -> AsyncGenerator[AnswerEvent, None]:
        self.quota.check(prompt.model)
        try:
            async with contextlib.aclosing(self.site.run(prompt)) as events:
                async for event in events:
                    yield event
        except QuotaExhausted as exc:
            if exc.model is not None:
                self.quota.note(exc)  # this model only: the account still serves the others
            else:
                self._cool_down(exc)
            raise
        except RateLimited as exc:
            self._cool_down(exc)
            raise
        except AuthExpired as exc:
            self._set(EngineState.AUTH_EXPIRED, exc.message)
            raise
        except EngineBroken as exc:
            self._broken(exc.message)
            raise
        finally:
            # Also when the session closes us after the finish: the page's reset runs then too.
            if self._context is not None and self._state is EngineState.READY:
                await self.writer.maybe_write(self._context)

    def _cool_down(self, exc: EngineError) -> None:
        self._cooldown_until = asyncio.get_running_loop().time() + (exc.retry_after or 300)
        self._set(EngineState.QUOTA_EXHAUSTED, exc.message)

    def _set(self, state: EngineState, detail: str) -> None:
        if state is not self._state:
            log.info("engine_state", old=self._state.value, new=state.value, detail=detail)
        self._state = state
        self._detail = detail

    def _broken(self, reason: str) -> None:
        if not self._closing:
            self._set(EngineState.BROKEN, reason)


def create_browser_engine(settings: ChildSettings, environ: Mapping[str, str]) -> BrowserEngine:
    try:
        config = load_site_config(settings.site_config, settings.site_url)
    except SiteConfigError as exc:
        raise EngineConfigError(str(exc)) from None
    # The page's path is the same whichever source is read: with answer_source = "dom" the
    # capture still carries the traffic, and the driver reads the rendered page instead.
    capture = NetworkCapture()
    proxy = create_capture_proxy(capture, config, settings.ca_file, settings.proxy)
    options = BrowserOptions(
        port=settings.browser_port,
        headless=settings.headless,
        executable=settings.browser_path,
        trusted_spki=proxy.ca.spki_sha256,
        locale=settings.locale,
        timezone=settings.timezone,
    )
    launcher = create_launcher(settings.engine, options, environ)
    site = AIStudio(config, capture)
    return BrowserEngine(launcher, site, ProfileWriter.from_settings(settings), proxy, settings.stream_port)


def create_capture_proxy(
    capture: NetworkCapture, config: SiteConfig, ca_file: Path, upstream_proxy: ProxyURL | None = None
) -> CaptureProxy:
    """The proxy that reads the answers, or EngineConfigError saying what is wrong with its setup."""
    try:
        ca = CertificateAuthority.load_or_create(ca_file)
        target = Target.parse(config.answer_host, config.answer_path)
        upstream = ssl.create_default_context(cafile=certifi.where())
        if config.answer_ca is not None:
            upstream.load_verify_locations(config.answer_ca)
    except (CAError, ValueError, OSError) as exc:
        raise EngineConfigError(f"cannot set up the answer capture: {exc}") from None
    upstream.set_alpn_protocols(["http/1.1"])
    return CaptureProxy(
        capture, ca, target, upstream, password=secrets.token_urlsafe(24), upstream_proxy=upstream_proxy
    )
