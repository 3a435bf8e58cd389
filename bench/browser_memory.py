"""What one browser child costs in memory, and which Chromium flags and Node options cut it.

    .venv/bin/python bench/browser_memory.py [--config NAME ...] [--children 1 2] [--requests 20]
    .venv/bin/python bench/browser_memory.py --list

A child in production is a Python process driving one page with Playwright, which means
three parts: the Python process, Playwright's Node.js driver (which Playwright starts as a
subprocess and talks to over a pipe), and a headless Chromium (browser process, renderer,
GPU / utility processes, zygotes). This script builds that tree on its own, for each named
configuration, and measures it:

1. The replica of the chat page (`child.replica`) runs in this process on a free port, with
   one session cookie per simulated child and the demo's pace of tokens.
2. Each simulated child is a separate Python process (this script with `--worker`), as in
   production: it starts a small HTTP forward proxy of its own (the real child's capture
   proxy sits on the same path), starts Playwright (`playwright.async_api`) with the
   configuration's NODE_OPTIONS in its environment (Playwright copies `os.environ` into the
   driver's: `playwright._impl._driver.get_driver_env`), launches `/usr/bin/chromium` with
   the configuration's flags, opens a context with a per-context `proxy` and the session
   cookie, exposes a binding and installs the driver's MutationObserver (as
   `child.site.driver` does), and opens the chat page.
3. When every child has loaded the page, the proportional set size (PSS, from
   /proc/PID/smaps_rollup via psutil `memory_full_info().pss`) of every process of every
   child is read: the Python process, the Node driver, and each Chromium process grouped
   by its `--type=` (utility processes by `--utility-sub-type=`).
4. Each child then runs `--requests` prompt/answer cycles as a user would: types a prompt,
   clicks Run, waits for the streamed answer to end (reported by the observer), reads the
   answer's text and checks it against what the replica must answer, then New chat and
   "Discard and continue". Every request goes through the child's proxy, which counts them.
   Then PSS is read again. A configuration "works" only if every answer was read correctly,
   the replica recorded every run as completed, and the proxy saw the page's requests.

PSS divides each shared page among the processes that map it, so the browser's and
Node's code pages cost less per child when several children run: use `--children 2`
(the children run at the same time, the way the coordinator runs them) and read the
per-child figure. Measurements are taken after a short settle (`--settle`, seconds).

Every process started here is stopped at the end, each worker with all its descendants.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
MB = 1024 * 1024
PROMPT_WORDS = (
    "Summarise the following notes about memory budgets for headless browsers driven by a "
    "scheduler that keeps several logged in pages open at once and streams their answers"
)

# What `child/engines/browser.py` launches Chromium with (copied so that this script keeps
# working while that module changes; `baseline` re-reads it when it can be imported).
CHROMIUM_ARGS_FALLBACK = (
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--disable-dev-shm-usage",
)

# Playwright 1.62 passes `--disable-features=<this list>` itself; Chromium keeps only the
# LAST --disable-features switch, so a configuration that adds features must repeat these.
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
# Likewise Playwright's own --blink-settings in headless mode.
PLAYWRIGHT_BLINK_SETTINGS = "primaryHoverType=2,availableHoverTypes=2,primaryPointerType=4,availablePointerTypes=4"

EXTRA_DISABLED_FEATURES = (
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


def features(*extra: str) -> str:
    return "--disable-features=" + ",".join((*PLAYWRIGHT_DISABLED_FEATURES, *extra))


def baseline_args() -> list[str]:
    try:
        from child.engines.browser import CHROMIUM_ARGS

        args = list(CHROMIUM_ARGS)
    except Exception:  # the module is being rebuilt: its last known flags
        args = list(CHROMIUM_ARGS_FALLBACK)
    return [*args, "--no-sandbox"] if os.geteuid() == 0 else args


PROCESS_FLAGS = [
    "--renderer-process-limit=1",
    "--process-per-site",
    "--disable-site-isolation-trials",
    features(*EXTRA_DISABLED_FEATURES),
]
GPU_FLAGS = ["--disable-software-rasterizer", "--in-process-gpu"]
JS_FLAGS = ["--js-flags=--max-old-space-size=128 --lite-mode --optimize-for-size"]
CACHE_FLAGS = ["--aggressive-cache-discard", "--disk-cache-size=1048576", "--media-cache-size=1048576"]
# Node accepts only a few V8 flags in NODE_OPTIONS (--optimize-for-size, --lite-mode, --max-lazy,
# --single-threaded-gc are refused and the driver does not start): the others go on node's
# command line through a wrapper that PLAYWRIGHT_NODEJS_PATH names (`node_flags`).
LEAN_NODE = "--max-old-space-size=128 --max-semi-space-size=1 --v8-pool-size=1"
LEAN_NODE_V8 = "--optimize-for-size --lite-mode --single-threaded-gc"


@dataclass
class Config:
    name: str
    help: str
    args: list[str] = field(default_factory=list)  # added after the baseline flags
    node_options: str = ""
    node_flags: str = ""  # V8 flags NODE_OPTIONS refuses: node runs through a wrapper with them
    viewport: tuple[int, int] | None = None
    headless: bool = True


def configs() -> dict[str, Config]:
    small = (800, 600)
    all_chromium = [*PROCESS_FLAGS, *GPU_FLAGS, "--no-zygote", *CACHE_FLAGS, "--window-size=800,600"]
    found = [
        Config("baseline", "child/engines/browser.py CHROMIUM_ARGS (+ --no-sandbox as root)"),
        Config("procs", "one renderer, no site isolation, no spare renderer, audio in browser", PROCESS_FLAGS),
        Config("gpu-inproc", "--in-process-gpu --disable-software-rasterizer (no GPU process)", GPU_FLAGS),
        Config("no-zygote", "--no-zygote (no zygote processes; needs --no-sandbox)", ["--no-zygote"]),
        Config("single-process", "--single-process (everything in the browser process)", ["--single-process"]),
        Config("js-lite", "V8 in the renderer: " + JS_FLAGS[0], JS_FLAGS),
        Config("jitless", "V8 in the renderer: --js-flags=--jitless", ["--js-flags=--jitless"]),
        Config("low-end", "--enable-low-end-device-mode", ["--enable-low-end-device-mode"]),
        Config("pressure-off", "--memory-pressure-off", ["--memory-pressure-off"]),
        Config("cache", " ".join(CACHE_FLAGS), CACHE_FLAGS),
        Config("small-viewport", "context viewport 800x600 and --window-size=800,600",
               ["--window-size=800,600"], viewport=small),
        Config("no-images", "--blink-settings=imagesEnabled=false (merged with Playwright's)",
               [f"--blink-settings={PLAYWRIGHT_BLINK_SETTINGS},imagesEnabled=false"]),
        Config("headless-new", "--headless=new (Playwright passes plain --headless)", ["--headless=new"]),
        Config("net-inproc", "network service in the browser process (feature NetworkServiceInProcess2)",
               ["--enable-features=CDPScreenshotNewSurface,NetworkServiceInProcess2"]),
        Config("node-lean", "NODE_OPTIONS=" + LEAN_NODE, node_options=LEAN_NODE),
        Config("node-jitless", "NODE_OPTIONS=--jitless", node_options="--jitless"),
        Config("node-v8", f"NODE_OPTIONS={LEAN_NODE}, node {LEAN_NODE_V8} (wrapper)",
               node_options=LEAN_NODE, node_flags=LEAN_NODE_V8),
        Config("chromium-all", "procs + gpu-inproc + no-zygote + cache + small viewport", all_chromium,
               viewport=small),
        Config("all", "chromium-all + node-lean", all_chromium, node_options=LEAN_NODE, viewport=small),
        Config("all-lowend", "all + --enable-low-end-device-mode",
               [*all_chromium, "--enable-low-end-device-mode"], node_options=LEAN_NODE, viewport=small),
        Config("all-js", "all-lowend + js-lite", [*all_chromium, "--enable-low-end-device-mode", *JS_FLAGS],
               node_options=LEAN_NODE, viewport=small),
    ]
    return {config.name: config for config in found}


# ------------------------------------------------------------------------------ the worker


OBSERVER_FALLBACK = """
(selectors) => {
  if (window.__coordinatorObserver) return;
  let last = null;
  const report = () => {
    const turns = document.querySelectorAll(selectors.model_turn);
    const turn = turns[turns.length - 1];
    const text = turn ? Array.from(turn.querySelectorAll(selectors.turn_text)).map((n) => n.textContent).join("") : "";
    const generating = document.querySelector(selectors.spinner) !== null;
    const toast = Array.from(document.querySelectorAll(selectors.toast)).map((n) => n.textContent.trim()).join("\\n");
    const state = JSON.stringify([turns.length, text, generating, toast]);
    if (state === last) return;
    last = state;
    window.__coordinatorReport({turns: turns.length, text, generating, toast});
  };
  window.__coordinatorObserver = new MutationObserver(report);
  window.__coordinatorObserver.observe(document.documentElement,
    {subtree: true, childList: true, characterData: true, attributes: true});
  report();
}
"""
SELECTORS_FALLBACK = {
    "prompt": "ms-prompt-input-wrapper ms-autosize-textarea textarea",
    "run_button": 'button[aria-label="Run"].run-button',
    "spinner": 'button[aria-label="Run"].run-button svg .stoppable-spinner',
    "model_turn": "ms-chat-turn .chat-turn-container.model",
    "turn_text": "ms-cmark-node.cmark-node",
    "new_chat": 'button[data-test-clear="outside"][aria-label="New chat"]',
    "confirm_discard": 'button.ms-button-primary:has-text("Discard and continue")',
    "toast": "div.toast.warning, div.toast.error",
}


def page_code() -> tuple[str, dict[str, str]]:
    try:
        from child.site.config import SELECTORS
        from child.site.scripts import OBSERVER

        return OBSERVER, {**SELECTORS_FALLBACK, **SELECTORS}
    except Exception:
        return OBSERVER_FALLBACK, SELECTORS_FALLBACK


class ForwardProxy:
    """A plain HTTP forward proxy (and CONNECT tunnel): one request per client connection."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_writer = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            self.requests.append(f"{method} {target}")
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                up_reader, upstream_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                await writer.drain()
            else:
                from urllib.parse import urlsplit

                url = urlsplit(target)
                up_reader, upstream_writer = await asyncio.open_connection(url.hostname, url.port or 80)
                path = url.path or "/"
                if url.query:
                    path += "?" + url.query
                headers = [
                    line for line in lines[1:]
                    if line and not line.lower().startswith(("proxy-connection:", "connection:"))
                ]
                upstream_writer.write(
                    f"{method} {path} {version}\r\n".encode("latin-1")
                    + "\r\n".join([*headers, "Connection: close"]).encode("latin-1")
                    + b"\r\n\r\n"
                )
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(up_reader, writer))
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            for w in (writer, upstream_writer):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


def say(kind: str, **data: Any) -> None:
    print(json.dumps({"kind": kind, **data}), flush=True)


async def wait_line() -> str:
    return (await asyncio.to_thread(sys.stdin.readline)).strip()


async def worker(args: argparse.Namespace) -> None:
    from playwright.async_api import async_playwright

    config = configs()[args.config[0]]
    if config.node_options:
        os.environ["NODE_OPTIONS"] = config.node_options  # the driver inherits os.environ
    else:
        os.environ.pop("NODE_OPTIONS", None)
    if config.node_flags:
        from playwright._impl._driver import compute_driver_executable

        node = compute_driver_executable()[0]
        wrapper = Path(f"/tmp/browser_memory_node_{os.getpid()}.sh")
        wrapper.write_text(f'#!/bin/sh\nexec {node} {config.node_flags} "$@"\n')
        wrapper.chmod(0o755)
        os.environ["PLAYWRIGHT_NODEJS_PATH"] = str(wrapper)
    observer, selectors = page_code()
    proxy = ForwardProxy()
    await proxy.start()
    playwright = await async_playwright().start()
    browser = context = None
    reports: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    try:
        started = time.monotonic()
        browser = await playwright.chromium.launch(
            executable_path=args.chromium, headless=config.headless, args=[*baseline_args(), *config.args]
        )
        options: dict[str, Any] = {"proxy": {"server": f"http://127.0.0.1:{proxy.port}"}}
        if config.viewport:
            options["viewport"] = {"width": config.viewport[0], "height": config.viewport[1]}
        context = await browser.new_context(**options)
        await context.add_cookies([{"name": "replica_session", "value": args.session, "url": args.url}])
        page = await context.new_page()
        await page.expose_function("__coordinatorReport", reports.put_nowait)
        page.on("response", lambda response: None)
        await page.goto(args.url + "/prompts/new_chat", timeout=60_000)
        await page.wait_for_selector(selectors["prompt"], timeout=60_000)
        await page.evaluate(observer, selectors)
        say("loaded", seconds=round(time.monotonic() - started, 2), proxied=len(proxy.requests),
            version=browser.version)
        await wait_line()

        from child.replica import answer_for

        ok, errors, timings = 0, [], []
        for index in range(args.requests):
            prompt = f"{index}: {PROMPT_WORDS}"
            t0 = time.monotonic()
            try:
                box = page.locator(selectors["prompt"])
                await box.fill(prompt[:-12])
                await box.press_sequentially(prompt[-12:])  # typing, key by key
                while not reports.empty():
                    reports.get_nowait()
                await page.click(selectors["run_button"], timeout=10_000)
                generated, text = False, ""
                async with asyncio.timeout(30):
                    while True:
                        state = await reports.get()
                        generated = generated or state["generating"]
                        if generated and not state["generating"]:
                            break
                turns = page.locator(selectors["model_turn"])
                text = (await turns.last.locator(selectors["turn_text"]).all_inner_texts())
                text = "".join(text)
                expected = answer_for(prompt, "replica-pro", None, [])
                if text.strip() != expected.strip():
                    errors.append(f"request {index}: read {text[:80]!r}, expected {expected[:80]!r}")
                else:
                    ok += 1
                await page.click(selectors["new_chat"], timeout=5_000)
                await page.click(selectors["confirm_discard"], timeout=5_000)
                await page.wait_for_selector(selectors["model_turn"], state="detached", timeout=5_000)
            except Exception as exc:
                errors.append(f"request {index}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
                if len(errors) > 3:
                    break
            timings.append(time.monotonic() - t0)
        say("warmed", ok=ok, errors=errors, proxied=len(proxy.requests),
            mean_s=round(sum(timings) / max(1, len(timings)), 3))
        await wait_line()
    except Exception as exc:
        say("failed", error=f"{type(exc).__name__}: {str(exc)[:400]}")
        await wait_line()
    finally:
        for closing in (context, browser):
            if closing is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(closing.close(), 10)
        with contextlib.suppress(Exception):
            await playwright.stop()
        await proxy.close()


# ------------------------------------------------------------------------- the measuring


def component(process: psutil.Process, worker_pid: int) -> str:
    if process.pid == worker_pid:
        return "python"
    cmdline = process.cmdline()
    exe = Path(cmdline[0]).name if cmdline else process.name()
    if exe == "node" or "run-driver" in cmdline:
        return "node driver"
    kind = next((arg.split("=", 1)[1] for arg in cmdline if arg.startswith("--type=")), None)
    if kind is None:
        return "chromium browser" if "chrom" in exe else f"other ({exe})"
    if kind == "utility":
        sub = next((arg.split("=", 1)[1] for arg in cmdline if arg.startswith("--utility-sub-type=")), "?")
        return "chromium utility:" + sub.rsplit(".", 1)[-1]
    return "chromium " + kind


def measure(worker_pids: list[int]) -> list[dict[str, Any]]:
    """Per child: PSS and process count per component, and its total."""
    result = []
    for pid in worker_pids:
        pss: dict[str, float] = defaultdict(float)
        count: dict[str, int] = defaultdict(int)
        try:
            root = psutil.Process(pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            processes = []
        for process in processes:
            try:
                name = component(process, pid)
                pss[name] += process.memory_full_info().pss / MB
                count[name] += 1
            except psutil.Error:
                continue
        result.append({"pss": dict(pss), "count": dict(count), "total": sum(pss.values())})
    return result


class Replica:
    """The replica in an event loop on a thread of this process (as tests/support/replica.py)."""

    def __init__(self, sessions: set[str]) -> None:
        from child.replica import ReplicaConfig, ReplicaServer

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        # The demo's pace: a first token after 200 ms, then one every 30 ms.
        self.server = ReplicaServer(ReplicaConfig(sessions=frozenset(sessions)))
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(15)
        self.url = self.server.url

    def runs(self) -> list[dict[str, Any]]:
        import httpx

        return list(httpx.get(self.url + "/__replica/runs", timeout=5).json())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def kill_tree(process: subprocess.Popen[str]) -> None:
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    with contextlib.suppress(Exception):
        if process.stdin:
            process.stdin.write("quit\n")
            process.stdin.flush()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
    for child in descendants:
        with contextlib.suppress(psutil.Error):
            child.kill()


def read_message(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            return {"kind": "failed", "error": f"worker exited ({process.poll()})"}
        with contextlib.suppress(ValueError):
            return dict(json.loads(line))
    return {"kind": "failed", "error": "timeout"}


def run_config(config: Config, children: int, replica: Replica, sessions: list[str],
               args: argparse.Namespace) -> dict[str, Any]:
    before = len(replica.runs())
    workers: list[subprocess.Popen[str]] = []
    result: dict[str, Any] = {"config": config.name, "children": children}
    try:
        for index in range(children):
            workers.append(subprocess.Popen(
                [sys.executable, __file__, "--worker", "--config", config.name, "--url", replica.url,
                 "--session", sessions[index], "--requests", str(args.requests), "--chromium", args.chromium],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
            ))
        loaded = [read_message(w, 120) for w in workers]
        result["loaded"] = loaded
        if any(m["kind"] != "loaded" for m in loaded):
            result["failed"] = "; ".join(m.get("error", m["kind"]) for m in loaded if m["kind"] != "loaded")
            return result
        time.sleep(args.settle)
        result["after_load"] = measure([w.pid for w in workers])
        for w in workers:
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.flush()
        warmed = [read_message(w, 60 + 10 * args.requests) for w in workers]
        result["warmed"] = warmed
        time.sleep(args.settle)
        result["after_requests"] = measure([w.pid for w in workers])
        runs = replica.runs()[before:]
        completed = sum(1 for run in runs if run["status"] == "completed" and run["text"] == run["answer"])
        expected = children * args.requests
        problems = [e for m in warmed for e in m.get("errors", [])]
        problems += [m.get("error", "") for m in warmed if m["kind"] != "warmed"]
        if completed != expected:
            problems.append(f"replica recorded {completed}/{expected} completed runs")
        if any(m.get("proxied", 0) < 2 * args.requests + 2 for m in warmed if m["kind"] == "warmed"):
            problems.append("the proxy saw fewer requests than the page made")
        result["problems"] = problems
        return result
    finally:
        for w in workers:
            kill_tree(w)


def summarise(result: dict[str, Any], phase: str) -> tuple[dict[str, float], float, dict[str, float]]:
    """Mean PSS per child per component, mean total per child, process counts per child."""
    per_child = result[phase]
    components: dict[str, float] = defaultdict(float)
    counts: dict[str, float] = defaultdict(float)
    for child in per_child:
        for name, value in child["pss"].items():
            components[name] += value / len(per_child)
        for name, value in child["count"].items():
            counts[name] += value / len(per_child)
    return dict(components), sum(c["total"] for c in per_child) / len(per_child), dict(counts)


GROUPS = ("python", "node driver", "chromium browser", "chromium renderer", "chromium gpu-process",
          "chromium zygote", "chromium utility:*", "other")


def group_of(name: str) -> str:
    if name.startswith("chromium utility:"):
        return "chromium utility:*"
    return name if name in GROUPS else "other"


def print_table(results: list[dict[str, Any]]) -> None:
    short = {"python": "py", "node driver": "node", "chromium browser": "browser", "chromium renderer": "render",
             "chromium gpu-process": "gpu", "chromium zygote": "zygote", "chromium utility:*": "utility",
             "other": "other"}
    header = f"{'config':<15} {'ch':>2} {'phase':<6} " + " ".join(f"{short[g]:>7}" for g in GROUPS)
    header += f" {'TOTAL':>7} {'procs':>5}  works"
    print(header)
    print("-" * len(header))
    for result in results:
        if "failed" in result:
            print(f"{result['config']:<15} {result['children']:>2} FAILED: {result['failed'][:200]}")
            continue
        for phase, label in (("after_load", "load"), ("after_requests", "reqs")):
            if phase not in result:
                continue
            components, total, counts = summarise(result, phase)
            grouped: dict[str, float] = defaultdict(float)
            for name, value in components.items():
                grouped[group_of(name)] += value
            works = "" if phase == "after_load" else ("yes" if not result.get("problems") else "NO")
            print(f"{result['config']:<15} {result['children']:>2} {label:<6} "
                  + " ".join(f"{grouped.get(g, 0.0):7.1f}" for g in GROUPS)
                  + f" {total:7.1f} {sum(counts.values()):5.0f}  {works}")
    print("\nMB of PSS per child (mean over the children run at once); procs = processes per child.")
    for result in results:
        if result.get("problems"):
            print(f"  {result['config']} x{result['children']}: " + "; ".join(result["problems"][:4]))
    details = [r for r in results if "after_requests" in r]
    if details:
        print("\nUtility processes (MB per child, after the requests):")
        for result in details:
            components, _, _ = summarise(result, "after_requests")
            utilities = {k.split(":", 1)[1]: v for k, v in components.items() if k.startswith("chromium utility:")}
            print(f"  {result['config']} x{result['children']}: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in sorted(utilities.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", nargs="*", help="configurations to run (default: all); see --list")
    parser.add_argument("--children", type=int, nargs="*", default=[1], help="children at once, e.g. 1 2")
    parser.add_argument("--requests", type=int, default=20, help="prompt/answer cycles per child")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait before each measurement")
    parser.add_argument("--chromium", default=CHROMIUM)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--list", action="store_true", help="list the configurations and exit")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--session", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker(args))
        return
    known = configs()
    if args.list:
        for config in known.values():
            print(f"{config.name:<15} {config.help}")
        return
    names = args.config or list(known)
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; see --list")
    sessions = [secrets.token_hex(8) for _ in range(max(args.children))]
    replica = Replica(set(sessions))
    print(f"replica on {replica.url}; {args.requests} requests per child; chromium {args.chromium}", flush=True)
    results = []
    try:
        for name in names:
            for children in args.children:
                print(f"... {name} x{children}", flush=True)
                results.append(run_config(known[name], children, replica, sessions, args))
    finally:
        replica.close()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print()
    print_table(results)


if __name__ == "__main__":
    main()
