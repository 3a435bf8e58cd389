"""What one browser child costs in memory, and which Chromium flags and Node options cut it.

    .venv/bin/python bench/browser_memory.py [--config NAME ...] [--children 1 2] [--requests 20]
    .venv/bin/python bench/browser_memory.py --list

A child in production is a Python process driving one page with Playwright, which means
three parts: the Python process, Playwright's Node.js driver (which Playwright starts as a
subprocess and talks to over a pipe), and a headless Chromium (browser process, renderer,
GPU / utility processes, zygotes). This script builds that tree on its own, for each named
configuration, and measures it:

1. A chat page runs in this process on a free port (`PageServer`, stdlib only): a textarea,
   a Run button, the answer streamed token by token by timers into a growing turn, a clock
   timer, a fetch per request, a modal New chat dialog, and a session cookie
   (`replica_session`) it requires. It stands in for `child.replica`, which was being
   rebuilt (answers over HTTPS with its own CA) when this script was written.
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
   answer's text and checks it against what the server must answer, then New chat and
   "Discard and continue". Every request goes through the child's proxy, which counts them.
   Then PSS is read again. A configuration "works" only if every answer was read correctly,
   the server recorded every run as finished with the text it sent, and the proxy saw the
   page's requests.

PSS divides each shared page among the processes that map it, so the browser's and
Node's code pages cost less per child when several children run: use `--children 2`
(the children run at the same time, the way the coordinator runs them) and read the
per-child figure. Measurements are taken after a short settle (`--settle`, seconds).
The kernel's PSS also divides pages with unrelated processes (other Chromiums and Nodes on
the machine), so the tables lead with "own" PSS: each physical page (from /proc/PID/pagemap,
root only) divided among the processes measured here only; kernel PSS and USS are beside it.

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
from child.engines.browser import OUR_DISABLED_FEATURES, PLAYWRIGHT_DISABLED_FEATURES  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
MB = 1024 * 1024
PROMPT_WORDS = (
    "Summarise the following notes about memory budgets for headless browsers driven by a "
    "scheduler that keeps several logged in pages open at once and streams their answers"
)

# What children launched Chromium with before issue 11: the reference every configuration
# here is measured against (child/engines/browser.py now adds the `best` flags).
BASELINE_ARGS = (
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--disable-dev-shm-usage",
)

# Playwright's own --blink-settings in headless mode: a configuration adding one repeats it.
PLAYWRIGHT_BLINK_SETTINGS = (
    "primaryHoverType=2,availableHoverTypes=2,primaryPointerType=4,availablePointerTypes=4"
)

# Chromium 156 preloads the omnibox popup (chrome://omnibox-popup.top-chrome/) in a renderer
# of its own, even headless: ~80 MB that no page uses.
OMNIBOX_FEATURES = tuple(name for name in OUR_DISABLED_FEATURES if name.startswith("WebUIOmnibox"))


def features(*extra: str) -> str:
    return "--disable-features=" + ",".join((*PLAYWRIGHT_DISABLED_FEATURES, *extra))


def baseline_args() -> list[str]:
    args = list(BASELINE_ARGS)
    return [*args, "--no-sandbox"] if os.geteuid() == 0 else args


PROCESS_FLAGS = [
    "--renderer-process-limit=1",
    "--process-per-site",
    "--disable-site-isolation-trials",
    features(*OUR_DISABLED_FEATURES),
]
GPU_FLAGS = ["--disable-software-rasterizer", "--in-process-gpu"]
JS_FLAGS = ["--js-flags=--max-old-space-size=128 --lite-mode --optimize-for-size"]
CACHE_FLAGS = ["--aggressive-cache-discard", "--disk-cache-size=1048576", "--media-cache-size=1048576"]
# Node accepts only a few V8 flags in NODE_OPTIONS (--optimize-for-size, --lite-mode, --max-lazy,
# --single-threaded-gc are refused and the driver does not start): the others go on node's
# command line through a wrapper that PLAYWRIGHT_NODEJS_PATH names (`node_flags`).
LEAN_NODE = "--max-old-space-size=128 --max-semi-space-size=1 --v8-pool-size=1"
LEAN_NODE_V8 = "--optimize-for-size --lite-mode --single-threaded-gc"


# The recommendation. No --no-zygote: it costs memory (every process then loads Chromium
# itself instead of forking the warmed-up zygote, whose pages it would share).
BEST_ARGS = [
    *PROCESS_FLAGS,
    *GPU_FLAGS,
    "--enable-features=CDPScreenshotNewSurface,NetworkServiceInProcess2",  # Playwright's + ours
    "--enable-low-end-device-mode",
    "--window-size=800,600",
]


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
        Config("baseline", "the flags before issue 11 (+ --no-sandbox as root)"),
        Config(
            "no-omnibox",
            "--disable-features=<Playwright's>," + ",".join(OMNIBOX_FEATURES),
            [features(*OMNIBOX_FEATURES)],
        ),
        Config(
            "procs",
            "no omnibox renderer, one renderer, no site isolation, no spare renderer, audio in browser",
            PROCESS_FLAGS,
        ),
        Config("gpu-inproc", "--in-process-gpu --disable-software-rasterizer (no GPU process)", GPU_FLAGS),
        Config("no-zygote", "--no-zygote (no zygote processes; needs --no-sandbox)", ["--no-zygote"]),
        Config(
            "single-process", "--single-process (everything in the browser process)", ["--single-process"]
        ),
        Config("js-lite", "V8 in the renderer: " + JS_FLAGS[0], JS_FLAGS),
        Config("jitless", "V8 in the renderer: --js-flags=--jitless", ["--js-flags=--jitless"]),
        Config("low-end", "--enable-low-end-device-mode", ["--enable-low-end-device-mode"]),
        Config("pressure-off", "--memory-pressure-off", ["--memory-pressure-off"]),
        Config("cache", " ".join(CACHE_FLAGS), CACHE_FLAGS),
        Config(
            "small-viewport",
            "context viewport 800x600 and --window-size=800,600",
            ["--window-size=800,600"],
            viewport=small,
        ),
        Config(
            "no-images",
            "--blink-settings=imagesEnabled=false (merged with Playwright's)",
            [f"--blink-settings={PLAYWRIGHT_BLINK_SETTINGS},imagesEnabled=false"],
        ),
        Config("headless-new", "--headless=new (Playwright passes plain --headless)", ["--headless=new"]),
        Config(
            "net-inproc",
            "network service in the browser process (feature NetworkServiceInProcess2)",
            ["--enable-features=CDPScreenshotNewSurface,NetworkServiceInProcess2"],
        ),
        Config("node-lean", "NODE_OPTIONS=" + LEAN_NODE, node_options=LEAN_NODE),
        Config("node-jitless", "NODE_OPTIONS=--jitless", node_options="--jitless"),
        Config(
            "node-v8",
            f"NODE_OPTIONS={LEAN_NODE}, node {LEAN_NODE_V8} (wrapper)",
            node_options=LEAN_NODE,
            node_flags=LEAN_NODE_V8,
        ),
        Config(
            "lean",
            "procs + gpu-inproc + no-zygote, NODE_OPTIONS=" + LEAN_NODE,
            [*PROCESS_FLAGS, *GPU_FLAGS, "--no-zygote"],
            node_options=LEAN_NODE,
        ),
        Config(
            "lean-single",
            "procs + single-process, NODE_OPTIONS=" + LEAN_NODE,
            [*PROCESS_FLAGS, "--single-process"],
            node_options=LEAN_NODE,
        ),
        Config(
            "best",
            "RECOMMENDED: procs + gpu-inproc + net-inproc + low-end + 800x600, node-v8",
            BEST_ARGS,
            node_options=LEAN_NODE,
            node_flags=LEAN_NODE_V8,
            viewport=small,
        ),
        Config(
            "best-single",
            "procs + single-process + low-end + 800x600, node-v8",
            [*PROCESS_FLAGS, "--single-process", "--enable-low-end-device-mode", "--window-size=800,600"],
            node_options=LEAN_NODE,
            node_flags=LEAN_NODE_V8,
            viewport=small,
        ),
        Config(
            "chromium-all",
            "procs + gpu-inproc + no-zygote + cache + small viewport",
            all_chromium,
            viewport=small,
        ),
        Config("all", "chromium-all + node-lean", all_chromium, node_options=LEAN_NODE, viewport=small),
        Config(
            "all-lowend",
            "all + --enable-low-end-device-mode",
            [*all_chromium, "--enable-low-end-device-mode"],
            node_options=LEAN_NODE,
            viewport=small,
        ),
        Config(
            "all-js",
            "all-lowend + js-lite",
            [*all_chromium, "--enable-low-end-device-mode", *JS_FLAGS],
            node_options=LEAN_NODE,
            viewport=small,
        ),
    ]
    return {config.name: config for config in found}


# ------------------------------------------------------------------------------ the worker


# The driver's MutationObserver (as child/site/scripts.py had it), reporting through a binding.
OBSERVER = """
(selectors) => {
  if (window.__coordinatorObserver) return;
  let last = null;
  const report = () => {
    const turns = document.querySelectorAll(selectors.model_turn);
    const turn = turns[turns.length - 1];
    const text = turn
      ? Array.from(turn.querySelectorAll(selectors.turn_text)).map((n) => n.textContent).join("") : "";
    const generating = document.querySelector(selectors.spinner) !== null;
    const toast = Array.from(document.querySelectorAll(selectors.toast))
      .map((n) => n.textContent.trim()).join("\\n");
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
                    line
                    for line in lines[1:]
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
    line: str = await asyncio.to_thread(sys.stdin.readline)
    return line.strip()


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
    observer, selectors = OBSERVER, PAGE_SELECTORS
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
        await context.add_cookies([{"name": SESSION_COOKIE, "value": args.session, "url": args.url}])
        page = await context.new_page()
        await page.expose_function("__coordinatorReport", reports.put_nowait)
        page.on("response", lambda response: None)
        await page.goto(args.url + "/prompts/new_chat", timeout=60_000)
        await page.wait_for_selector(selectors["prompt"], timeout=60_000)
        await page.evaluate(observer, selectors)
        say(
            "loaded",
            seconds=round(time.monotonic() - started, 2),
            proxied=len(proxy.requests),
            version=browser.version,
        )
        await wait_line()

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
                text = "".join(await turns.last.locator(selectors["turn_text"]).all_inner_texts())
                expected = answer_for(prompt)
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
        say(
            "warmed",
            ok=ok,
            errors=errors,
            proxied=len(proxy.requests),
            mean_s=round(sum(timings) / max(1, len(timings)), 3),
        )
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
        Path(f"/tmp/browser_memory_node_{os.getpid()}.sh").unlink(missing_ok=True)


# ------------------------------------------------------------------------- the measuring


def component(process: psutil.Process, worker_pid: int) -> str:
    if process.pid == worker_pid:
        return "python"
    cmdline = process.cmdline()
    exe = Path(cmdline[0]).name if cmdline else process.name()
    if exe == "node" or "run-driver" in cmdline:
        return "node driver"
    kind: str | None = next((arg.split("=", 1)[1] for arg in cmdline if arg.startswith("--type=")), None)
    if kind is None:
        return "chromium browser" if "chrom" in exe else f"other ({exe})"
    if kind == "utility":
        sub = next((arg.split("=", 1)[1] for arg in cmdline if arg.startswith("--utility-sub-type=")), "?")
        return "chromium utility:" + sub.rsplit(".", 1)[-1]
    return "chromium " + kind


def resident_pfns(pid: int) -> Any:
    """The physical frames of every resident page of `pid` (root only: /proc/PID/pagemap)."""
    import numpy

    ranges = []
    with open(f"/proc/{pid}/smaps") as smaps:
        current = None
        for line in smaps:
            first = line.split(" ", 1)[0]
            if "-" in first and not first.endswith(":"):
                start, end = (int(x, 16) for x in first.split("-"))
                current = (start, end)
            elif first == "Rss:" and current is not None and int(line.split()[1]) > 0:
                ranges.append(current)
    found = []
    with open(f"/proc/{pid}/pagemap", "rb", buffering=0) as pagemap:
        for start, end in ranges:
            pagemap.seek(start // 4096 * 8)
            entries = numpy.frombuffer(pagemap.read((end - start) // 4096 * 8), dtype=numpy.uint64)
            present = entries[(entries >> numpy.uint64(63)) & numpy.uint64(1) == 1]
            found.append(present & numpy.uint64((1 << 55) - 1))
    return numpy.unique(numpy.concatenate(found)) if found else numpy.zeros(0, dtype=numpy.uint64)


def measure(worker_pids: list[int]) -> list[dict[str, Any]]:
    """Per child, per component: kernel PSS, USS, and "own PSS", with process counts.

    Kernel PSS divides a shared page among every process on the machine that maps it, so
    it drops when unrelated Chromium or Node processes run (other engineers' tests do).
    "Own PSS" divides each physical page only among the processes measured here (all the
    children run at once), from /proc/PID/pagemap: what the children cost as if nothing
    else ran on the machine. It is the figure to compare between configurations.
    """
    import numpy

    rows = []  # (child index, component, pss, uss, pfns)
    for index, pid in enumerate(worker_pids):
        try:
            root = psutil.Process(pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            processes = []
        for process in processes:
            try:
                name = component(process, pid)
                info = process.memory_full_info()
                rows.append((index, name, info.pss / MB, info.uss / MB, resident_pfns(process.pid)))
            except (psutil.Error, OSError):
                continue
    every = numpy.concatenate([row[4] for row in rows]) if rows else numpy.zeros(0, dtype=numpy.uint64)
    frames, sharers = numpy.unique(every, return_counts=True)
    result: list[dict[str, defaultdict[str, float]]] = [
        {
            "pss": defaultdict(float),
            "uss": defaultdict(float),
            "own": defaultdict(float),
            "count": defaultdict(float),
        }
        for _ in worker_pids
    ]
    for index, name, pss, uss, pfns in rows:
        share = 1.0 / sharers[numpy.searchsorted(frames, pfns)]
        child = result[index]
        child["pss"][name] += pss
        child["uss"][name] += uss
        child["own"][name] += float(share.sum()) * 4096 / MB
        child["count"][name] += 1
    mine = set(worker_pids) | {
        p.pid
        for pid in worker_pids
        if psutil.pid_exists(pid)
        for p in psutil.Process(pid).children(recursive=True)
    }
    foreign = 0
    for process in psutil.process_iter(["name", "pid"]):
        if process.info["pid"] not in mine and process.info["name"] in ("chromium", "node", "chrome"):
            foreign += 1
    return [
        {
            "pss": dict(c["pss"]),
            "uss": dict(c["uss"]),
            "own": dict(c["own"]),
            "count": dict(c["count"]),
            "total": sum(c["own"].values()),
            "total_pss": sum(c["pss"].values()),
            "total_uss": sum(c["uss"].values()),
            "foreign_processes": foreign,
        }
        for c in result
    ]


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Chat (bench page)</title>
<style>
 body { font: 14px sans-serif; margin: 0; display: grid; grid-template-columns: 240px 1fr; height: 100vh; }
 nav { overflow: auto; border-right: 1px solid #ccc; } nav li { padding: 4px; }
 main { display: flex; flex-direction: column; } #turns { flex: 1; overflow: auto; padding: 8px; }
 .turn { margin: 6px 0; padding: 6px; border-radius: 6px; }
 .user { background: #eef; } .model { background: #efe; }
 .spinner { display: inline-block; width: 10px; height: 10px; border: 2px solid #888; border-radius: 50%; }
</style></head>
<body>
<nav><ul id="history"></ul></nav>
<main>
 <div><button id="new-chat" aria-label="New chat">New chat</button> <span id="clock"></span>
      <select id="model"></select></div>
 <div id="turns"></div>
 <form id="prompt-form"><textarea id="prompt" rows="3" cols="80" aria-label="Enter a prompt"></textarea>
  <button id="run" type="submit" aria-label="Run" disabled>Run</button></form>
</main>
<dialog id="discard"><p>Discard this chat?</p><button id="cancel">Cancel</button>
 <button id="confirm" class="primary">Discard and continue</button></dialog>
<script>
 const $ = (s) => document.querySelector(s);
 const textarea = $("#prompt"), run = $("#run"), turns = $("#turns");
 let generation = null;
 for (let i = 0; i < 200; i++) {
   const li = document.createElement("li"); li.textContent = `Saved prompt ${i}: ` + "lorem ipsum ".repeat(4);
   $("#history").appendChild(li);
 }
 setInterval(() => { $("#clock").textContent = new Date().toISOString(); }, 500);
 fetch("/api/models").then((r) => r.json()).then((body) => {
   for (const m of body.models) {
     const o = document.createElement("option"); o.textContent = m; $("#model").appendChild(o);
   }
 });
 textarea.addEventListener("input", () => { run.disabled = generation === null && !textarea.value.trim(); });
 $("#prompt-form").addEventListener("submit", async (event) => {
   event.preventDefault();
   const prompt = textarea.value; if (!prompt.trim() || generation) return;
   const user = document.createElement("div"); user.className = "turn user"; user.textContent = prompt;
   turns.appendChild(user);
   textarea.value = ""; generation = {}; run.innerHTML = '<span class="spinner"></span> Stop';
   const response = await fetch("/api/generate", {method: "POST", body: JSON.stringify({prompt})});
   const body = await response.json();
   const turn = document.createElement("div"); turn.className = "turn model"; turns.appendChild(turn);
   const text = document.createElement("div"); text.className = "text"; turn.appendChild(text);
   let index = 0;
   generation.timer = setInterval(() => {
     if (index < body.tokens.length) {
       text.appendChild(document.createTextNode(body.tokens[index++])); return;
     }
     clearInterval(generation.timer); generation = null; run.textContent = "Run"; run.disabled = true;
     fetch("/api/finished", {method: "POST", body: JSON.stringify({id: body.id, text: text.textContent})});
   }, body.token_ms);
 });
 $("#new-chat").addEventListener("click", () => $("#discard").showModal());
 $("#cancel").addEventListener("click", () => $("#discard").close());
 $("#confirm").addEventListener("click", () => { $("#discard").close(); turns.replaceChildren(); });
</script></body></html>
"""
PAGE_SELECTORS = {
    "prompt": "#prompt",
    "run_button": "#run",
    "spinner": "#run .spinner",
    "model_turn": "#turns .turn.model",
    "turn_text": ".text",
    "new_chat": "#new-chat",
    "confirm_discard": "#confirm",
    "toast": ".toast",
}
SESSION_COOKIE = "replica_session"


def answer_for(prompt: str) -> str:
    """What the bench page's server answers: deterministic, a few hundred characters."""
    return "Bench model answers: " + " ".join(prompt.split() * 3)


class PageServer:
    """The bench's chat page on a free port, on threads of this process (stdlib only).

    Stands in for `child.replica`, which was being rebuilt while this script was written
    (its answers moved to an HTTPS endpoint with its own CA and protobuf frames). What
    matters for memory is kept: a textarea, a Run button, the answer streamed token by
    token by a timer into a growing turn, a clock timer, a fetch per request, a modal
    dialog for New chat, 200 list items of history, and the session cookie check.
    """

    def __init__(self, sessions: set[str], token_ms: int = 30) -> None:
        import http.server

        server = self
        self.sessions = sessions
        self.runs: list[dict[str, Any]] = []
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _authorised(self) -> bool:
                cookies = dict(
                    part.strip().split("=", 1)
                    for part in self.headers.get("Cookie", "").split(";")
                    if "=" in part
                )
                if cookies.get(SESSION_COOKIE) in server.sessions:
                    return True
                self._send(401, b'{"error": "sign in first"}')
                return False

            def do_GET(self) -> None:
                if not self._authorised():
                    return
                if self.path.startswith("/prompts/new_chat"):
                    self._send(200, PAGE.encode(), "text/html; charset=utf-8")
                elif self.path == "/api/models":
                    self._send(200, b'{"models": ["bench-pro", "bench-flash"]}')
                else:
                    self._send(404, b"{}")

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if not self._authorised():
                    return
                with server.lock:
                    if self.path == "/api/generate":
                        run: dict[str, Any] = {
                            "id": len(server.runs),
                            "answer": answer_for(body["prompt"]),
                            "text": None,
                        }
                        server.runs.append(run)
                        tokens = [" " + w if i else w for i, w in enumerate(run["answer"].split(" "))]
                        reply: dict[str, Any] = {"id": run["id"], "tokens": tokens, "token_ms": token_ms}
                    elif self.path == "/api/finished":
                        server.runs[int(body["id"])]["text"] = body["text"]
                        reply = {"ok": True}
                    else:
                        reply = {}
                self._send(200, json.dumps(reply).encode())

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def count(self) -> int:
        with self.lock:
            return len(self.runs)

    def completed(self, first: int) -> int:
        with self.lock:
            return sum(1 for run in self.runs[first:] if run["text"] == run["answer"])

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


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


def run_config(
    config: Config, children: int, replica: PageServer, sessions: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    before = replica.count()
    workers: list[subprocess.Popen[str]] = []
    result: dict[str, Any] = {"config": config.name, "children": children}
    try:
        for index in range(children):
            workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--worker",
                        "--config",
                        config.name,
                        "--url",
                        replica.url,
                        "--session",
                        sessions[index],
                        "--requests",
                        str(args.requests),
                        "--chromium",
                        args.chromium,
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    start_new_session=True,
                )
            )
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
        completed = replica.completed(before)
        expected = children * args.requests
        problems = [e for m in warmed for e in m.get("errors", [])]
        problems += [m.get("error", "") for m in warmed if m["kind"] != "warmed"]
        if completed != expected:
            problems.append(f"the server recorded {completed}/{expected} runs finished with the right text")
        if any(m.get("proxied", 0) < 2 * args.requests + 2 for m in warmed if m["kind"] == "warmed"):
            problems.append("the proxy saw fewer requests than the page made")
        result["problems"] = problems
        return result
    finally:
        for w in workers:
            kill_tree(w)


def summarise(
    result: dict[str, Any], phase: str, metric: str = "own"
) -> tuple[dict[str, float], dict[str, float]]:
    """Mean MB per child per component (`metric`: own, pss or uss), and process counts per child."""
    per_child = result[phase]
    components: dict[str, float] = defaultdict(float)
    counts: dict[str, float] = defaultdict(float)
    for child in per_child:
        for name, value in child[metric].items():
            components[name] += value / len(per_child)
        for name, value in child["count"].items():
            counts[name] += value / len(per_child)
    return dict(components), dict(counts)


GROUPS = (
    "python",
    "node driver",
    "chromium browser",
    "chromium renderer",
    "chromium gpu-process",
    "chromium zygote",
    "chromium utility:*",
    "other",
)
SHORT = {
    "python": "py",
    "node driver": "node",
    "chromium browser": "browser",
    "chromium renderer": "render",
    "chromium gpu-process": "gpu",
    "chromium zygote": "zygote",
    "chromium utility:*": "utility",
    "other": "other",
}


def group_of(name: str) -> str:
    if name.startswith("chromium utility:"):
        return "chromium utility:*"
    return name if name in GROUPS else "other"


def print_table(results: list[dict[str, Any]]) -> None:
    header = f"{'config':<15} {'ch':>2} {'phase':<5} " + " ".join(f"{SHORT[g]:>7}" for g in GROUPS)
    header += f" {'OWN':>7} {'PSS':>7} {'USS':>7} {'procs':>5} {'other':>5} works"
    print(header)
    print("-" * len(header))
    for result in results:
        if "failed" in result:
            print(f"{result['config']:<15} {result['children']:>2} FAILED: {result['failed'][:300]}")
            continue
        for phase, label in (("after_load", "load"), ("after_requests", "reqs")):
            if phase not in result:
                continue
            components, counts = summarise(result, phase)
            grouped: dict[str, float] = defaultdict(float)
            for name, value in components.items():
                grouped[group_of(name)] += value
            per_child = result[phase]
            mean = {
                key: sum(c[key] for c in per_child) / len(per_child)
                for key in ("total", "total_pss", "total_uss")
            }
            works = "" if phase == "after_load" else ("yes" if not result.get("problems") else "NO")
            print(
                f"{result['config']:<15} {result['children']:>2} {label:<5} "
                + " ".join(f"{grouped.get(g, 0.0):7.1f}" for g in GROUPS)
                + f" {mean['total']:7.1f} {mean['total_pss']:7.1f} {mean['total_uss']:7.1f}"
                + f" {sum(counts.values()):5.0f} {per_child[0]['foreign_processes']:5d} {works}"
            )
    print("\nMB per child, mean over the children run at once. Components and OWN: PSS counting only the")
    print("processes measured here as sharers (unaffected by other programs); PSS: the kernel's PSS;")
    print("USS: private memory only. procs: processes per child; other: Chromium/Node processes on the")
    print("machine that are not ours (they lower the kernel's PSS).")
    for result in results:
        if result.get("problems"):
            print(f"  {result['config']} x{result['children']} BROKE: " + "; ".join(result["problems"][:4]))
    details = [r for r in results if "after_requests" in r]
    if details:
        print("\nUtility processes (own MB per child, after the requests):")
        for result in details:
            components, _ = summarise(result, "after_requests")
            utilities = {
                k.split(":", 1)[1]: v for k, v in components.items() if k.startswith("chromium utility:")
            }
            print(
                f"  {result['config']} x{result['children']}: "
                + ", ".join(f"{k} {v:.1f}" for k, v in sorted(utilities.items()))
            )


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
    replica = PageServer(set(sessions))
    print(
        f"bench page on {replica.url}; {args.requests} requests per child; chromium {args.chromium}",
        flush=True,
    )
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
