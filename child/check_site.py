"""`coordinator check-site`: one whole request against the site, told step by step.

What a user runs after the page changed, before and after a `--site-config` fix. Run by
the coordinator's CLI as `python -m child.check_site`, so the coordinator holds no
browser code: it starts a browser through the same engine code a child runs, opens the
site with the profile, sends one prompt, and prints which selectors of the empty chat
matched (and by which alternative), what each step took, and what the capture saw.
Exit 0 when every step worked, 1 when one failed, 78 on a bad command line or config.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from child.capture.exchange import NetworkCapture
from child.engines.base import EngineConfigError, EngineError, EngineState, Prompt
from child.settings import ChildSettings, ConfigError, check_profile
from child.site.drift import SelectorMatch
from child.site.trace import StepTime
from coordinator.protocol import logs
from coordinator.protocol.link import (
    EXIT_CONFIG,
    Citation,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    default_ca_file,
)

DEFAULT_PROMPT = "Say hello in five words."
_SHOWN_TEXT = 200


@dataclass(slots=True)
class AnswerSeen:
    """What came back: where it was read, and a tally of its events."""

    source: str | None = None
    reason: str | None = None  # why the rendered page was read, if it was
    events: int = 0
    text_chars: int = 0
    reasoning_chars: int = 0
    tool_calls: int = 0
    citations: int = 0
    finish: str | None = None
    usage: dict[str, int] | None = None
    text: str = ""
    # What the capture saw of the answer's network exchange (none: it saw no request).
    network: dict[str, Any] | None = None


@dataclass(slots=True)
class Report:
    site: str
    profile: str
    engine: str = ""
    model: str | None = None
    capture: str = "disabled"
    error: str | None = None
    at_load: list[dict[str, Any]] = field(default_factory=list)
    after_reset: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    answer: AnswerSeen = field(default_factory=AnswerSeen)

    @property
    def ok(self) -> bool:
        return self.error is None and all(step["error"] is None for step in self.steps)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _matches(matches: Sequence[SelectorMatch]) -> list[dict[str, Any]]:
    return [
        {
            "key": match.key,
            "matched": match.matched,
            "alternative": match.alternative + 1 if match.matched else None,
            "alternatives": match.alternatives,
            "selector": match.matched_selector or match.selector,
        }
        for match in matches
    ]


def _steps(steps: Sequence[StepTime]) -> list[dict[str, Any]]:
    return [{"name": s.name, "ms": s.ms, "error": s.error, "detail": s.detail} for s in steps]


async def check(settings: ChildSettings, prompt_text: str, model: str | None) -> Report:
    """Start the engine, run one request, stop; everything seen goes in the report."""
    # Imported here: the command line is checked before Playwright loads.
    from child.engines.browser import create_browser_engine

    engine = create_browser_engine(settings, os.environ)
    site = engine.site
    report = Report(site=site.config.url, profile=str(settings.profile_path), engine=engine.name)
    capture = site.capture
    report.capture = "enabled" if capture is not None else "disabled"
    try:
        try:
            await engine.start()
        finally:
            report.steps += _steps(site.trace.steps)
            report.at_load = _matches(site.drift.matches)
        status = engine.status()
        if status.state is not EngineState.READY:
            report.error = f"the engine is {status.state.value}: {status.detail}"
            return report
        report.model = model or site.model or (engine.models() or ("",))[0]
        prompt = Prompt(report.model, ({"role": "user", "content": prompt_text},))
        try:
            async with contextlib.aclosing(engine.generate(prompt)) as events:
                async for event in events:
                    _tally(report.answer, event)
        except EngineError as exc:
            report.error = f"{exc.status} {exc.code}: {exc.message}"
        report.steps += _steps(site.trace.steps)
        report.after_reset = _matches(site.drift.matches)
        report.answer.source = site.answers.last.value if site.answers.last else None
        if isinstance(capture, NetworkCapture) and capture.last is not None:
            report.answer.network = capture.last.stats.to_log()
        report.answer.reason = site.answers.reason
    except EngineError as exc:
        report.error = f"{exc.status} {exc.code}: {exc.message}"
    finally:
        await engine.close()
    return report


def _tally(seen: AnswerSeen, event: object) -> None:
    seen.events += 1
    if isinstance(event, TextDelta):
        seen.text_chars += len(event.text)
        if len(seen.text) < _SHOWN_TEXT:
            seen.text = (seen.text + event.text)[:_SHOWN_TEXT]
    elif isinstance(event, ReasoningDelta):
        seen.reasoning_chars += len(event.text)
    elif isinstance(event, ToolCall):
        seen.tool_calls += 1
    elif isinstance(event, Citation):
        seen.citations += 1
    elif isinstance(event, Finish):
        seen.finish = event.reason.value
        if event.usage is not None:
            seen.usage = asdict(event.usage)


def render(report: Report) -> str:
    """The report for a person: selectors, steps, answer, verdict."""
    lines = [f"site {report.site}, profile {report.profile}, engine {report.engine}, model {report.model}"]
    for title, matches in (("at load", report.at_load), ("after the reset", report.after_reset)):
        if not matches:
            continue
        lines.append(f"\nselectors of the empty chat, {title}:")
        for match in matches:
            if not match["matched"]:
                verdict = "MISSING "
            elif match["alternative"] > 1:
                verdict = f"fallback {match['alternative']}/{match['alternatives']}"
            else:
                verdict = "ok      "
            lines.append(f"  {verdict:<13} {match['key']:<18} {match['selector']}")
    lines.append("\nsteps:")
    for step in report.steps:
        said = f"FAILED: {step['error']}" if step["error"] else "ok"
        extra = f" ({step['detail']})" if step["detail"] else ""
        lines.append(f"  {step['name']:<10} {step['ms']:>9.1f} ms  {said}{extra}")
    answer = report.answer
    lines.append(f"\ncapture: {report.capture}")
    if answer.source is None:
        lines.append("answer: none")
    else:
        why = f" ({answer.reason})" if answer.reason else ""
        usage = ", ".join(f"{k} {v}" for k, v in answer.usage.items()) if answer.usage else "not given"
        lines.append(
            f"answer read from the {answer.source}{why}: {answer.events} events, {answer.text_chars} "
            f"characters of text, {answer.reasoning_chars} of reasoning, {answer.tool_calls} tool calls, "
            f"{answer.citations} citations; "
            f"finish {answer.finish or 'none'}; usage {usage}"
        )
        if answer.text:
            lines.append(f"answer begins: {answer.text!r}")
    network = answer.network
    if network is None:
        lines.append("network: the capture saw no answer request")
    else:
        lines.append(
            f"network: HTTP {network['status']}, {network['encoding'] or 'identity'}, "
            f"{network['bytes']} bytes in {network['frames']} frames; finish {network['finish'] or 'none'}"
            + (f"; error {network['error']}" if network["error"] else "")
        )
    if report.error:
        lines.append(f"\nerror: {report.error}")
    lines.append("\nOK: every step worked" if report.ok else "\nFAILED: see above")
    return "\n".join(lines)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m child.check_site", description=__doc__)
    parser.add_argument("--profile", type=Path, required=True, help="storage-state JSON file")
    parser.add_argument("--site-url", help="the site's origin, e.g. a local replica's")
    parser.add_argument("--site-config", type=Path, help="TOML or JSON file overriding selectors")
    parser.add_argument("--engine", choices=["auto", "chromium", "camoufox"], default="auto")
    parser.add_argument("--browser-path", help="the browser executable")
    parser.add_argument("--headless", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="the prompt to send")
    parser.add_argument("--model", help="the model to ask (default: the page's own)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--ca-file", type=Path, help="the capture's CA (default: the one `run` uses)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The driver's log lines (a selector missing, a reload) go to stderr, the report to stdout.
    logs.configure("warning", json=False, stream=sys.stderr)
    settings = ChildSettings(
        profile_path=args.profile,
        engine=args.engine,
        api_port=0,
        stream_port=_free_port(),
        browser_port=_free_port(),
        headless=args.headless,
        browser_path=args.browser_path,
        site_url=args.site_url,
        site_config=args.site_config,
        ca_file=args.ca_file or default_ca_file(),
    )
    try:
        check_profile(args.profile)
        report = asyncio.run(check(settings, args.prompt, args.model))
    except (ConfigError, EngineConfigError) as exc:
        print(f"check-site: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:  # the browser would not start: say so in one line, not a traceback
        said = str(exc).strip()[:300]
        print(f"check-site: the browser failed: {type(exc).__name__}: {said}", file=sys.stderr)
        return 1
    print(json.dumps(report.to_json(), indent=2) if args.json else render(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
