"""What a browser child costs: how fast the demo starts, what the coordinator and the child
add to the time to first token, and how much memory a child and its browser take.

    .venv/bin/python bench/browser.py [--starts 3] [--requests 20] [--warmup 3]

1. Cold start: `coordinator run --demo` (the replica and two Chromium children), from
   spawning the process until GET /ready counts both children serving, polled every 50 ms;
   repeated. The coordinator's and the children's logs split each start into milestones.
2. Latency: streamed requests through the coordinator, one at a time, against the demo's
   replica at its default pace, interleaved with the same prompt typed into the same
   replica by a headless Chromium page of our own and timed inside that page from the key
   press (what the replica itself takes). The difference is what the coordinator and the
   child add. A second series attaches to the children's own pages over their debugging
   ports and timestamps each step inside the page, to show where the added time goes; and
   the Playwright calls a driver makes (before the key press, and for the reset to a new
   chat) are timed one by one on our page.
3. Memory: proportional set size of each child with its Playwright driver and browser, once
   both are ready and again after the requests; the coordinator's own resident set.

Every process started here is stopped at the end: the coordinator by its process group,
then every descendant it had (browsers included) by a sweep.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from playwright.sync_api import Browser, Page, sync_playwright

from child.engines.browser import launch_args
from child.replica import CHAT_PATH, ReplicaConfig
from child.site.config import SELECTORS
from coordinator.cli.demo import DEMO_PROFILES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BENCH_PORTS,
    PROMPT,
    command_line,
    free_port_bases,
    machine,
    percentile,
    spawn,
    stop_process_group,
)

COORDINATOR = str(Path(sys.executable).with_name("coordinator"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = launch_args()
CHILDREN = len(DEMO_PROFILES)
MB = 2**20

# Installed in a chat page: timestamps (the page's clock, ms since the epoch) of the last
# prompt input, the Ctrl+Enter, the first answer text, the spinner going away, and the
# model turn going away (New chat), for each run.
PROBE = """
(s) => {
  if (window.__bench) return;
  const now = () => performance.timeOrigin + performance.now();
  const bench = (window.__bench = { runs: [], input: null });
  let run = null;
  document.addEventListener("input", (event) => {
    if (event.target.matches(s.prompt)) bench.input = now();
  }, true);
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || !event.ctrlKey || !event.target.matches(s.prompt)) return;
    run = { input: bench.input, keydown: now(), first: null, end: null, reset: null };
    bench.runs.push(run);
  }, true);
  new MutationObserver(() => {
    if (run === null) return;
    const t = now();
    const turns = document.querySelectorAll(s.model_turn);
    const last = turns[turns.length - 1];
    const text = last ? last.querySelector(s.turn_text) : null;
    if (run.first === null && text !== null && text.textContent !== "") run.first = t;
    if (run.first !== null && run.end === null && document.querySelector(s.spinner) === null) run.end = t;
    if (run.end !== null && turns.length === 0) { run.reset = t; run = null; }
  }).observe(document.documentElement,
    { subtree: true, childList: true, characterData: true, attributes: true });
}
"""


# -- processes ---------------------------------------------------------------------------


def stop_all(process: subprocess.Popen[bytes]) -> None:
    """Stop the coordinator and everything under it; fail loudly if anything survives."""
    try:
        tree = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        tree = []
    stop_process_group(process, timeout=15)
    _, alive = psutil.wait_procs(tree, timeout=5)
    if alive:
        raise RuntimeError(f"processes left behind: {[p.pid for p in alive]}")


@dataclass(frozen=True, slots=True)
class Demo:
    process: subprocess.Popen[bytes]
    port: int
    folder: Path
    spawned: float  # time.time() just before the spawn


@dataclass(frozen=True, slots=True)
class ChildInfo:
    id: str
    pid: int
    browser_port: int
    site_url: str
    profile: str


@contextlib.contextmanager
def demo(folder: Path) -> Iterator[Demo]:
    (base,) = free_port_bases(1 + 3 * CHILDREN, **BENCH_PORTS)
    port, api, stream, browser = base, base + 1, base + 1 + CHILDREN, base + 1 + 2 * CHILDREN
    folder.mkdir(parents=True)
    argv = [
        COORDINATOR, "run", "--demo", "--host", "127.0.0.1", "--port", str(port),
        "--base-api-port", str(api), "--base-stream-port", str(stream), "--base-browser-port", str(browser),
        "--log-dir", str(folder), "--log-format", "json",
    ]  # fmt: skip
    spawned = time.time()
    process = spawn(argv, {}, folder / "coordinator.log")
    try:
        yield Demo(process, port, folder, spawned)
    finally:
        stop_all(process)


def wait_ready(run: Demo, timeout: float = 60.0) -> float:
    """Seconds from the spawn until /ready counts every demo child serving."""
    url = f"http://127.0.0.1:{run.port}/ready"
    while time.time() - run.spawned < timeout:
        if run.process.poll() is not None:
            raise RuntimeError(f"the coordinator exited with code {run.process.returncode}; see {run.folder}")
        with contextlib.suppress(httpx.HTTPError, ValueError):
            if httpx.get(url, timeout=1.0).json()["children"]["serving"] == CHILDREN:
                return time.time() - run.spawned
        time.sleep(0.05)
    raise RuntimeError(f"the demo children were not ready within {timeout:g}s; see {run.folder}")


def children_of(run: Demo) -> list[ChildInfo]:
    found = []
    for entry in httpx.get(f"http://127.0.0.1:{run.port}/admin/children", timeout=5).json()["data"]:
        argv = psutil.Process(entry["pid"]).cmdline()
        found.append(
            ChildInfo(
                id=entry["id"],
                pid=entry["pid"],
                browser_port=entry["ports"]["browser"],
                site_url=argv[argv.index("--site-url") + 1],
                profile=argv[argv.index("--profile") + 1],
            )
        )
    return found


def _log_events(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.startswith("{")]


def _at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"]).timestamp()


def start_milestones(run: Demo) -> dict[str, float]:
    """When (seconds after the spawn) each step of the start was done, for the later child."""
    events = _log_events(run.folder / "coordinator.log")
    children = [_log_events(run.folder / f"{name}.log") for name in DEMO_PROFILES]

    def latest(found: list[float]) -> float:
        return round(max(found) - run.spawned, 3)

    return {
        "replica_answering_s": latest([_at(e) for e in events if e["event"] == "demo_site"]),
        "children_spawned_s": latest(
            [_at(e) for e in events if e["event"] == "child_state" and e["new"] == "starting"]
        ),
        "children_serving_http_s": latest(
            [_at(e) for log in children for e in log if e["event"] == "child_started"]
        ),
        "browsers_and_pages_open_s": latest(
            [_at(e) for log in children for e in log if e["event"] == "child_ready"]
        ),
        "coordinator_saw_ready_s": latest(
            [_at(e) for e in events if e["event"] == "child_state" and e["new"] == "ready"]
        ),
    }


# -- latency -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Streamed:
    """One streamed request through the coordinator; times are time.time()."""

    child: str
    sent: float
    first: float
    last: float
    done: float


def stream_once(client: httpx.Client, port: int, model: str) -> Streamed:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
    first = last = 0.0
    sent = time.time()
    with client.stream("POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.read().decode(errors='replace')}")
        for line in response.iter_lines():
            if line == "data: [DONE]":
                return Streamed(response.headers["x-coordinator-child"], sent, first, last, time.time())
            if line.startswith("data: "):
                event = json.loads(line.removeprefix("data: "))
                if "error" in event:
                    raise RuntimeError(f"the stream ended in an error: {event['error']}")
                if event["choices"] and event["choices"][0]["delta"].get("content"):
                    last = time.time()
                    first = first or last
    raise RuntimeError("the stream ended without [DONE]")


def clock_offset_ms(page: Page) -> float:
    """How far the page's clock is ahead of time.time(), in ms (the tightest of 5 brackets)."""
    brackets = []
    for _ in range(5):
        before = time.time()
        in_page: float = page.evaluate("() => performance.timeOrigin + performance.now()")
        after = time.time()
        brackets.append((after - before, in_page - (before + after) / 2 * 1000))
    return min(brackets)[1]


def direct_run(page: Page) -> tuple[dict[str, float], dict[str, float]]:
    """The prompt typed into our own page: the probe's record of the run (page clock, ms), and
    how long each Playwright call of the reset to a new chat took (ms)."""
    page.fill(SELECTORS["prompt"], PROMPT)
    page.wait_for_selector(f"{SELECTORS['run_button']}:not([disabled])")
    index = page.evaluate("() => window.__bench.runs.length")
    page.press(SELECTORS["prompt"], "Control+Enter")
    page.wait_for_function("(i) => window.__bench.runs[i] && window.__bench.runs[i].end !== null", arg=index)
    steps: dict[str, Callable[[], object]] = {
        "click_new_chat": lambda: page.click(SELECTORS["new_chat"]),
        "click_discard": lambda: page.click(SELECTORS["confirm_discard"]),
        "wait_turns_gone": lambda: page.wait_for_selector(SELECTORS["model_turn"], state="detached"),
    }
    reset: dict[str, float] = {}
    for name, call in steps.items():
        started = time.perf_counter()
        call()
        reset[name] = (time.perf_counter() - started) * 1000
    run: dict[str, float] = page.evaluate("(i) => window.__bench.runs[i]", index)
    return run, reset


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 0.5), 1), "p90": round(percentile(values, 0.9), 1)}


def open_direct_page(browser: Browser, child: ChildInfo) -> Page:
    """A page on the demo's replica, logged in with a demo profile's session cookie."""
    page = browser.new_context(storage_state=child.profile).new_page()
    page.goto(child.site_url + CHAT_PATH)
    page.wait_for_selector(SELECTORS["prompt"])
    page.evaluate(PROBE, dict(SELECTORS))
    return page


def latency(run: Demo, children: list[ChildInfo], requests: int, warmup: int) -> dict[str, Any]:
    """Coordinator requests and direct runs, alternating, on the same replica."""
    model = httpx.get(f"http://127.0.0.1:{run.port}/v1/models", timeout=5).json()["data"][0]["id"]
    through: list[Streamed] = []
    direct: list[dict[str, float]] = []
    resets: list[dict[str, float]] = []
    started = time.perf_counter()
    with sync_playwright() as playwright, httpx.Client(timeout=60) as client:
        # For scale next to the cold start: one driver, one browser, one page, started alone.
        opening = {"playwright_driver_s": time.perf_counter() - started}
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        opening["browser_launch_s"] = time.perf_counter() - started - sum(opening.values())
        page = open_direct_page(browser, children[0])
        opening["page_open_s"] = time.perf_counter() - started - sum(opening.values())
        for i in range(warmup + requests):
            streamed = stream_once(client, run.port, model)
            ran, reset = direct_run(page)
            if i >= warmup:
                through.append(streamed)
                direct.append(ran)
                resets.append(reset)
        costs = call_costs(page)
        chromium = browser.version
        browser.close()
    ttft = [(r.first - r.sent) * 1000 for r in through]
    last = [(r.last - r.sent) * 1000 for r in through]
    done = [(r.done - r.sent) * 1000 for r in through]
    direct_ttft = [r["first"] - r["keydown"] for r in direct]
    direct_total = [r["end"] - r["keydown"] for r in direct]
    return {
        "chromium": chromium,
        "model": model,
        "prompt": PROMPT,
        "requests": requests,
        "warmup": warmup,
        "served_by": {c.id: sum(r.child == c.id for r in through) for c in children},
        "coordinator_ttft_ms": summary(ttft),
        "coordinator_last_token_ms": summary(last),
        "coordinator_done_ms": summary(done),
        "direct_ttft_ms": summary(direct_ttft),
        "direct_total_ms": summary(direct_total),
        "added_ttft_ms": _difference(summary(ttft), summary(direct_ttft)),
        "added_last_token_ms": _difference(summary(last), summary(direct_total)),
        "added_done_ms": _difference(summary(done), summary(direct_total)),
        # The same New chat, Discard and wait as the driver's reset, timed call by call.
        "direct_reset_ms": {
            **{name: summary([r[name] for r in resets]) for name in resets[0]},
            "total": summary([sum(r.values()) for r in resets]),
        },
        "playwright_call_ms": costs,
        "direct_start_s": {name: round(value, 3) for name, value in opening.items()},
    }


def _difference(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {key: round(a[key] - b[key], 1) for key in a}


def call_costs(page: Page, repeat: int = 30) -> dict[str, float]:
    """Median ms of each kind of Playwright call a driver may make before the key press.

    Each is one round trip from Python through the Playwright driver to the page and back;
    the two `one_evaluate_*` entries do in one in-page call what the calls above do in several.
    """
    s = SELECTORS
    calls: dict[str, Callable[[], object]] = {
        "evaluate_noop": lambda: page.evaluate("1"),
        "input_value": lambda: page.input_value(s["temperature"]),
        "locator_count": lambda: page.locator(s["remove_stop"]).count(),
        "fill_prompt": lambda: page.fill(s["prompt"], PROMPT),
        "wait_for_run_enabled": lambda: page.wait_for_selector(f"{s['run_button']}:not([disabled])"),
        # Four key events, like the driver's Control+Enter, but harmless in the prompt box.
        "press_key": lambda: page.press(s["prompt"], "Control+End"),
        # For comparison: what one evaluate costs that reads all the settings at once, or
        # that sets the prompt the way a user's typing would (value, then an input event).
        "one_evaluate_read_settings": lambda: page.evaluate(
            "(s) => [...[s.temperature, s.top_p, s.max_tokens].map((q) => document.querySelector(q).value),"
            " document.querySelectorAll(s.remove_stop).length]",
            dict(s),
        ),
        "one_evaluate_set_prompt": lambda: page.evaluate(
            "([q, text]) => { const box = document.querySelector(q); box.value = text;"
            " box.dispatchEvent(new Event('input', { bubbles: true })); }",
            [s["prompt"], PROMPT],
        ),
    }
    costs = {}
    for name, call in calls.items():
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            call()
            times.append((time.perf_counter() - started) * 1000)
        costs[name] = round(statistics.median(times), 2)
    page.fill(s["prompt"], "")
    return costs


def breakdown(run: Demo, children: list[ChildInfo], requests: int) -> dict[str, Any]:
    """Where the time goes: the children's own pages timestamp each step of each request."""
    model = httpx.get(f"http://127.0.0.1:{run.port}/v1/models", timeout=5).json()["data"][0]["id"]
    with sync_playwright() as playwright, httpx.Client(timeout=60) as client:
        pages: dict[str, tuple[Page, float]] = {}
        for child in children:
            # Attached, never closed: closing would end the child's browser; leaving the
            # `with` only stops our own Playwright driver.
            browser = playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{child.browser_port}")
            page = next(
                p for c in browser.contexts for p in c.pages if p.url.startswith(child.site_url + CHAT_PATH)
            )
            page.evaluate(PROBE, dict(SELECTORS))
            pages[child.id] = (page, clock_offset_ms(page))
        # One more request first, to warm our connection; it is paired with its run, then dropped.
        through = [stream_once(client, run.port, model) for _ in range(requests + 1)]
        # [DONE] leaves before the page's reset: let the last run of each page record its own.
        for page, _ in pages.values():
            page.wait_for_function(
                "() => window.__bench.runs.every((run) => run.reset != null)", timeout=10_000
            )
        in_page = {cid: iter(page.evaluate("() => window.__bench.runs")) for cid, (page, _) in pages.items()}
    steps: dict[str, list[float]] = {}
    for number, request in enumerate(through):
        offset = pages[request.child][1]
        page_run = {key: value - offset for key, value in next(in_page[request.child]).items()}
        if number == 0:
            continue
        for name, value in (
            ("request_to_prompt_filled", page_run["input"] - request.sent * 1000),
            ("prompt_filled_to_key_press", page_run["keydown"] - page_run["input"]),
            ("key_press_to_first_text_in_page", page_run["first"] - page_run["keydown"]),
            ("first_text_in_page_to_client", request.first * 1000 - page_run["first"]),
            ("last_text_in_page_to_client", request.last * 1000 - page_run["end"]),
            ("reset_in_page", page_run["reset"] - page_run["end"]),
            ("last_token_to_done_at_client", (request.done - request.last) * 1000),
            ("ttft_at_client", (request.first - request.sent) * 1000),
        ):
            steps.setdefault(name, []).append(value)
    return {
        "requests": requests,
        "clock_offsets_ms": {cid: round(offset, 2) for cid, (_, offset) in pages.items()},
        "steps_ms": {name: summary(values) for name, values in steps.items()},
    }


# -- memory ------------------------------------------------------------------------------


def tree_memory(pid: int) -> dict[str, float]:
    """PSS of a child and everything under it: its Playwright driver and its browser."""
    root = psutil.Process(pid)
    pss = {"child_python": 0, "playwright_driver": 0, "browser": 0}
    rss = uss = processes = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            info = proc.memory_full_info()
            exe = (proc.cmdline() or [""])[0]
        except psutil.Error:
            continue
        if proc.pid == pid:
            kind = "child_python"
        elif "chromium" in exe:
            kind = "browser"
        else:
            kind = "playwright_driver"
        pss[kind] += info.pss
        rss += info.rss
        uss += info.uss
        processes += 1
    return {
        "pss_mb": round(sum(pss.values()) / MB, 1),
        **{f"{kind}_pss_mb": round(value / MB, 1) for kind, value in pss.items()},
        "uss_mb": round(uss / MB, 1),
        "rss_sum_mb": round(rss / MB, 1),
        "processes": processes,
    }


def memory(run: Demo, children: list[ChildInfo]) -> dict[str, Any]:
    coordinator = psutil.Process(run.process.pid)
    info = coordinator.memory_full_info()
    replica = next(p for p in coordinator.children() if "child.replica" in p.cmdline())
    return {
        "children": {child.id: tree_memory(child.pid) for child in children},
        "coordinator_rss_mb": round(info.rss / MB, 1),
        "coordinator_pss_mb": round(info.pss / MB, 1),
        "replica_pss_mb": round(replica.memory_full_info().pss / MB, 1),
    }


def main() -> None:
    parser = command_line(__doc__, children=False)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    options = parser.parse_args()
    pace = ReplicaConfig()
    # The load average (before, and after: that one includes this script) says how busy the
    # machine was; other work on it shows in every figure here.
    report: dict[str, Any] = {
        **machine(),
        "replica_pace": {"first_token_ms": pace.first_token_ms, "token_ms": pace.token_ms},
    }
    starts = []
    with tempfile.TemporaryDirectory(prefix="coordinator-bench-browser-") as tmp:
        for attempt in range(options.starts):
            with demo(Path(tmp) / f"start-{attempt}") as run:
                ready = wait_ready(run)
                starts.append({"ready_s": round(ready, 3), **start_milestones(run)})
                if attempt < options.starts - 1:
                    continue
                # The last start stays up for the other measurements.
                children = children_of(run)
                report["memory_ready"] = memory(run, children)
                report["latency"] = latency(run, children, options.requests, options.warmup)
                report["memory_after_requests"] = memory(run, children)
                report["breakdown"] = breakdown(run, children, options.requests)
    report["cold_start"] = {
        "runs": starts,
        "median_ready_s": round(statistics.median(s["ready_s"] for s in starts), 3),
    }
    report["load_average_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
