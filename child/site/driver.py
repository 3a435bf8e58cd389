"""The site driver: AI Studio's chat page, driven through Playwright.

What it looks for on the page is data (`child.site.config`), what it runs inside the page
is `child.site.scripts`; this module is the request flow.

One request: choose the model, apply the run settings, put the whole conversation in
the prompt box, submit, and stream the answer as a MutationObserver in the page reports
its text; then reset to a new chat, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import structlog
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, Response

from child.engines.base import AuthExpired, EngineBroken, EngineError, Prompt, QuotaExhausted
from child.site import scripts
from child.site.config import MODEL_PREFERENCE_KEY, MODELS_RESPONSE_PATTERN, SiteConfig
from coordinator.protocol.link import AnswerEvent, Finish, TextDelta
from coordinator.protocol.openai import message_text

log = structlog.get_logger("child.site.driver")

_MODEL_NAME = re.compile(r"models/([A-Za-z0-9][A-Za-z0-9._-]*)")


def conversation_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The whole conversation as one prompt: each request is stateless on the page.

    A lone user message goes as it is; a conversation goes as labelled turns, the last
    one last, so the page answers the last message with the rest as context.
    """
    turns = [(str(m.get("role", "user")), message_text(dict(m)).strip()) for m in messages]
    turns = [(role, text) for role, text in turns if text]
    if len(turns) == 1 and turns[0][0] == "user":
        return turns[0][1]
    labels = {"system": "System", "developer": "System", "assistant": "Assistant", "tool": "Tool"}
    return "\n\n".join(f"{labels.get(role, 'User')}: {text}" for role, text in turns)


def bare_model(name: str) -> str:
    return name.removeprefix("models/")


@dataclass(frozen=True, slots=True)
class PageState:
    turns: int = 0
    text: str = ""
    generating: bool = False
    toast: str = ""


class AIStudio:
    """Drives one page. Not safe for two requests at once: the session guarantees one."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self.page: Page | None = None
        self.models: tuple[str, ...] = config.default_models
        self.model: str | None = None
        self._state = PageState()
        self._reports: asyncio.Queue[PageState] | None = None
        self._page_defaults: dict[str, str] = {}  # run settings as the page had them at first

    async def open(self, page: Page) -> None:
        """Open a new chat; raise AuthExpired if the site asks to sign in."""
        self.page = page
        await page.expose_function("__coordinatorReport", self._on_report)
        page.on("response", self._on_response)
        await self._load()

    async def _load(self) -> None:
        page = self._page()
        selectors = dict(self.config.selectors)
        await page.goto(self.config.new_chat_url, timeout=self.config.load_timeout_s * 1000)
        if self.logged_out(page.url):
            raise AuthExpired(f"the site asked to sign in ({_origin(page.url)}); log the profile in again")
        await page.wait_for_selector(selectors["prompt"], timeout=self.config.load_timeout_s * 1000)
        await page.evaluate(scripts.OBSERVER, selectors)
        self.model = self.model or await self._current_model()

    def logged_out(self, url: str) -> bool:
        # Host and path only: a sign-in URL carries the chat's URL in its query.
        parts = urlsplit(url)
        where = parts.netloc + parts.path
        return any(pattern in where for pattern in self.config.login_url_patterns)

    async def run(self, prompt: Prompt) -> AsyncGenerator[AnswerEvent, None]:
        """The page's answer as text deltas, then a Finish; closing early stops the generation.

        The rendered page shows neither usage nor why the answer ended: the Finish says
        `stop` and leaves the usage to the child's estimate.
        """
        page = self._page()
        selectors = self.config.selectors
        submitted = False
        try:
            await self._choose_model(prompt.model)
            run_enabled = await self._prepare(prompt)
            if not run_enabled:
                await page.wait_for_selector(f"{selectors['run_button']}:not([disabled])", timeout=10_000)
            self._reports = asyncio.Queue()
            before = self._state.turns
            await page.press(selectors["prompt"], "Control+Enter")
            submitted = True
            async for delta in self._stream(before):
                yield TextDelta(delta)
            yield Finish()
        except PlaywrightError as exc:
            if page.is_closed():
                raise EngineBroken("the browser page closed") from None
            raise EngineError(f"the page did not behave as expected: {_first_line(exc)}") from None
        finally:
            self._reports = None
            await self._reset(stop=submitted)

    async def _stream(self, turns_before: int) -> AsyncGenerator[str, None]:
        sent = ""
        started = generated = False
        deadline = time.monotonic() + self.config.start_timeout_s
        while True:
            state = await self._next_report(deadline)
            self._check_toast(state.toast)
            if not started and (state.turns > turns_before or state.generating):
                started = True
                deadline = time.monotonic() + self.config.answer_timeout_s
            if not started:
                continue
            generated = generated or state.generating
            if state.text.startswith(sent) and len(state.text) > len(sent):
                yield state.text[len(sent) :]
                sent = state.text
            if generated and not state.generating:
                return

    async def _next_report(self, deadline: float) -> PageState:
        assert self._reports is not None
        remaining = deadline - time.monotonic()
        try:
            async with asyncio.timeout(max(0.0, remaining)):
                return await self._reports.get()
        except TimeoutError:
            raise EngineError(
                "the page showed no progress in time; the selectors may be out of date (see --site-config)"
            ) from None

    def _check_toast(self, toast: str) -> None:
        lowered = toast.lower()
        for pattern, seconds in self.config.quota_patterns.items():
            if pattern in lowered:
                raise QuotaExhausted(f"the site says: {toast[:200]}", retry_after=seconds)

    async def _choose_model(self, model: str) -> None:
        wanted = bare_model(model)
        if wanted == self.model:
            return
        page = self._page()
        await page.evaluate(
            scripts.SET_MODEL,
            [MODEL_PREFERENCE_KEY, f"models/{wanted}"],
        )
        await self._load()
        self.model = wanted

    async def _current_model(self) -> str | None:
        value = await self._page().evaluate(scripts.CURRENT_MODEL, MODEL_PREFERENCE_KEY)
        return bare_model(value) if isinstance(value, str) else (self.models[0] if self.models else None)

    async def _prepare(self, prompt: Prompt) -> bool:
        """Settings and prompt in the page in one round trip; True if Run is enabled already.

        Each Playwright call is a round trip of a few milliseconds, and they add up to most of
        what a child adds to the time to first token, so the values are set inside the page,
        with the input and change events the page listens for. What a request leaves out goes
        back to the page's own default: the page keeps run settings from one chat to the next.
        """
        page = self._page()
        selectors = self.config.selectors
        settings = prompt.settings
        wanted = {
            name: None if value is None else str(value)
            for name, value in (
                ("temperature", settings.temperature),
                ("top_p", settings.top_p),
                ("max_tokens", settings.max_tokens),
            )
        }
        result = await page.evaluate(
            scripts.PREPARE,
            [dict(selectors), wanted, self._page_defaults, conversation_text(prompt.messages)],
        )
        if result["missing"]:
            raise EngineError(
                f"the page has no {', '.join(result['missing'])} (selectors out of date? see --site-config)"
            )
        for name, value in result["defaults"].items():
            self._page_defaults.setdefault(name, value)
        if result["chips"] or settings.stop:
            # Stop sequences replace whatever the page had, so requests don't leak into each other.
            remove = page.locator(selectors["remove_stop"])
            while await remove.count():
                await remove.first.click()
            for stop in settings.stop:
                await page.fill(selectors["add_stop"], stop)
                await page.press(selectors["add_stop"], "Enter")
        return bool(result["run_enabled"])

    async def _reset(self, *, stop: bool) -> None:
        """Back to an empty new chat: stop a generation left running, discard the turns."""
        page = self.page
        if page is None or page.is_closed():
            return
        selectors = self.config.selectors
        try:
            if stop and self._state.generating:
                await page.click(selectors["run_button"], timeout=5_000)
                await page.wait_for_selector(selectors["spinner"], state="detached", timeout=5_000)
            await page.click(selectors["new_chat"], timeout=5_000)
            with contextlib.suppress(PlaywrightError):
                await page.click(selectors["confirm_discard"], timeout=2_000)
            await page.wait_for_selector(selectors["model_turn"], state="detached", timeout=5_000)
        except PlaywrightError as exc:
            # The buttons moved or a dialog is in the way: a fresh page is always clean.
            log.warning("reset_by_reload", reason=_first_line(exc))
            with contextlib.suppress(PlaywrightError):
                await self._load()

    # -- page callbacks -------------------------------------------------------------------

    def _on_report(self, report: dict[str, Any]) -> None:
        self._state = PageState(
            turns=int(report.get("turns", 0)),
            text=str(report.get("text", "")),
            generating=bool(report.get("generating")),
            toast=str(report.get("toast", "")),
        )
        if self._reports is not None:
            self._reports.put_nowait(self._state)

    async def _on_response(self, response: Response) -> None:
        if MODELS_RESPONSE_PATTERN not in response.url:
            return
        with contextlib.suppress(PlaywrightError):
            names = tuple(dict.fromkeys(_MODEL_NAME.findall(await response.text())))
            if names:
                self.models = names

    def _page(self) -> Page:
        if self.page is None or self.page.is_closed():
            raise EngineBroken("the browser page is closed")
        return self.page


def _origin(url: str) -> str:
    return "/".join(url.split("/")[:3])


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
