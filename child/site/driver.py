"""The site driver: AI Studio's chat page, driven through Playwright.

What it looks for on the page is data (`child.site.config`), what it runs inside the page
is `child.site.scripts`; this module is the request flow.

One request: check the model on its label (opening `?model=<id>` when another is asked
for), make sure the chat is temporary, apply the run settings, then the system
instructions, thinking level and tools (`child.site.settings_panel`), put the rest of the
conversation in the prompt box, submit, and read the answer from the page's own network answer
(`child.capture`); only when that is not to be had, from the rendered page, and then
say so. Then reset to a new chat, whatever happened. Every failure names its step and
the selector that failed (`child.site.errors`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import structlog
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, Response
from playwright.async_api import TimeoutError as PlaywrightTimeout

from child.capture import AnswerWatch, Capture
from child.engines.base import (
    AuthExpired,
    EngineBroken,
    EngineError,
    NotSupported,
    PermissionDenied,
    Prompt,
    QuotaExhausted,
    RateLimited,
    site_refusal,
)
from child.site import scripts, settings_panel, uploads
from child.site.config import (
    MODELS_RESPONSE_PATTERN,
    PERMISSION_PATTERNS,
    POPUP_KEYS,
    AnswerSource,
    SiteConfig,
)
from child.site.drift import Drift, check_request, read_matches
from child.site.errors import (
    DriverError,
    ModelNotOffered,
    UnsupportedSetting,
    missing,
)
from child.site.tools import (
    SET_TOOLS,
    PageTools,
    ToolPlan,
    call_names,
    held_to_plan,
    plan_tools,
    tool_turn,
)
from child.site.trace import AnswerSources, Trace, first_line
from coordinator.protocol.link import AnswerError, AnswerEvent, Finish, SettingApplied, TextDelta
from coordinator.protocol.openai import message_text

log = structlog.get_logger("child.site.driver")


_MODEL_NAME = re.compile(r"models/([A-Za-z0-9][A-Za-z0-9._-]*)")
# Settings in the collapsed "Advanced settings" group: it is opened only for these.
ADVANCED = ("top_p", "max_tokens")
# How long Ctrl+Enter gets to start an answer before the Run button is clicked instead
# (a pop-up that opened just before the key press makes the page ignore it).
SUBMIT_RETRY_S = 1.0
# How long the capture gets, once the page has started, to see the page's request.
CAPTURE_GRACE_S = 3.0
# How often the DOM fallback reads the page (a fallback: simplicity before speed).
DOM_POLL_S = 0.05
# The step a missing key belongs to, in errors from PREPARE.
_STEP_OF = {
    "model_label": "model",
    "more_actions": "temporary_chat",
    "temporary_chat": "temporary_chat",
    "temporary_on": "temporary_chat",
    "run_settings": "settings",
    "advanced_settings": "settings",
    "prompt": "prompt",
    "run_button": "prompt",
    "tools_group": "tools",
}


# The keys PREPARE waits for (a menu's item, a group's content); the others it checks once.
_WAITED_FOR = frozenset({"temporary_chat", "temporary_on", "advanced_settings"})


def conversation_text(
    messages: Sequence[Mapping[str, Any]], files: Mapping[int, Sequence[str]] | None = None
) -> str:
    """The whole conversation as one prompt: each request is stateless on the page.

    A lone user message goes as it is; a conversation goes as labelled turns, the last
    one last, so the page answers the last message with the rest as context. `files`
    (message index → file names) names the files each message carried, since they all
    go with the one prompt. The tool loop is carried whole: an assistant's calls (id,
    name, arguments) and each tool's result with its call's id and function
    (`child.site.tools`).
    """
    labels = {"system": "System", "developer": "System", "assistant": "Assistant", "tool": "Tool"}
    names = call_names(messages)
    turns = []
    for index, message in enumerate(messages):
        role = str(message.get("role", "user"))
        if (loop := tool_turn(message, names)) is not None:
            turns.append((role, *loop))
            continue
        text = message_text(dict(message)).strip()
        if files and files.get(index):
            text = uploads.labelled(text, files[index])
        if not text:
            continue
        label = labels.get(role, "User")
        if isinstance(name := message.get("name"), str):
            label += f" ({name})"
        turns.append((role, label, text))
    if len(turns) == 1 and turns[0][0] == "user" and turns[0][1] == "User":
        return turns[0][2]
    return "\n\n".join(f"{label}: {text}" for _, label, text in turns)


def bare_model(name: str) -> str:
    return name.strip().removeprefix("models/")


def same_model(label: str | None, wanted: str) -> bool:
    """Whether the model label shows `wanted` (the label may carry a `models/` prefix)."""
    return label is not None and bare_model(label).lower() == wanted.lower()


@dataclass(frozen=True, slots=True)
class PageState:
    """The rendered page as the DOM fallback's observer reports it."""

    turns: int = 0
    text: str = ""
    generating: bool = False
    finished: bool = False
    error: str = ""
    toast: str = ""


class AIStudio:
    """Drives one page. Not safe for two requests at once: the session guarantees one.

    `selectors_missing` (the zero-state keys that matched nothing at the last check),
    `answers` (where answers were read) and `trace` (the last request's steps) are what
    the engine and `check-site` report.
    """

    def __init__(self, config: SiteConfig, capture: Capture | None = None) -> None:
        self.config = config
        self.capture = capture
        self.page: Page | None = None
        self.models: tuple[str, ...] = config.default_models
        self.model: str | None = None  # as the model label showed it last
        self.drift = Drift()
        self._models_seen = asyncio.Event()
        self.answers = AnswerSources()
        self.trace = Trace()
        self._last_read: PageState | None = None  # the DOM fallback's last reading
        self._defaults: dict[str, str] = {}  # run settings as the page had them at first
        self._dirty: set[str] = set()  # settings a request moved away from the page's default
        self._stops_set = False
        self._tools: PageTools | None = None  # as the page's Tools group is set; None: unknown
        self._reload_next = False
        self.panel = settings_panel.PanelState()  # system instructions, thinking level, tools

    @property
    def selectors_missing(self) -> tuple[str, ...]:
        return self.drift.missing

    # -- the page -------------------------------------------------------------------------

    async def open(self, page: Page) -> None:
        """Open a new chat; raise AuthExpired if the site asks to sign in."""
        self.page = page
        await page.add_init_script(scripts.popup_guard(self.config.selectors, POPUP_KEYS))
        page.on("response", self._on_response)
        self.trace = Trace()
        await self._load(None)
        # Ready only with the page's own model list: a model offered before it is known
        # would be a guess the scheduler then refuses.
        try:
            async with asyncio.timeout(self.config.step_timeout_s):
                await self._models_seen.wait()
        except TimeoutError:
            log.warning("models_not_seen", waited_s=self.config.step_timeout_s, using=list(self.models))

    async def _load(self, model: str | None) -> None:
        """(Re)open the new-chat page, on `model` if given, and settle it: temporary chat on,
        the model label read, the empty chat's selectors checked."""
        page = self._page()
        selectors = self.config.selectors
        async with self.trace.step("load") as detail:
            await page.goto(self.config.chat_url(model), timeout=self.config.load_timeout_s * 1000)
            self._check_login(page.url)
            ready = f"{selectors['zero_state']}, {selectors['prompt']}"
            try:
                await page.wait_for_selector(ready, timeout=self.config.load_timeout_s * 1000)
            except PlaywrightTimeout:
                self._check_login(page.url)
                # What does match, for /health and check-site: the page may have been renamed.
                found = await page.evaluate(scripts.MATCHES, check_request(selectors))
                self.drift.update(read_matches(selectors, found))
                raise DriverError(
                    "load",
                    f"neither the empty chat nor the prompt box showed within "
                    f"{self.config.load_timeout_s:g}s",
                    key="zero_state",
                    selector=ready,
                ) from None
            result = await page.evaluate(
                scripts.SETTLE,
                [dict(selectors), POPUP_KEYS, check_request(selectors), self._step_ms],
            )
            self.drift.update(read_matches(selectors, result["matches"]))
            self.model = bare_model(result["label"]) if result["label"] else None
            detail.append(f"model {self.model}")
            if not result["temporary"]["on"]:
                log.warning("temporary_chat_off", key=result["temporary"]["key"])
        self._tools = None  # a fresh page: its tools are whatever it starts with
        self._reload_next = False

    def logged_out(self, url: str) -> bool:
        # Host and path only: a sign-in URL carries the chat's URL in its query.
        parts = urlsplit(url)
        where = parts.netloc + parts.path
        return any(pattern in where for pattern in self.config.login_url_patterns)

    def _check_login(self, url: str) -> None:
        if self.logged_out(url):
            raise AuthExpired(f"the site asked to sign in ({_origin(url)}); log the profile in again")

    # -- one request ----------------------------------------------------------------------

    async def run(self, prompt: Prompt) -> AsyncGenerator[AnswerEvent, None]:
        """The answer's events, ending with a Finish; closing early stops the generation."""
        plan = plan_tools(prompt.options)  # before the page is touched: a refusal costs nothing
        if plan.page.functions is not None and not self._network_wanted():
            # The rendered page shows a call's name and arguments, not its id or typed values.
            raise NotSupported(
                "tools", "this child reads answers from the rendered page, where calls cannot be read"
            )
        plan.log()
        page = self._page()
        self.trace = Trace()
        submitted = complete = False
        watch: AnswerWatch | None = None
        try:
            async with self.trace.step("prepare") as detail:
                prepared = await self._prepare(prompt, plan)
                detail.append(f"model {self.model}")
                # After the model is set (a model switch reloads the page) and before submit.
                await uploads.attach(page, self.config.selectors, prompt.attachments, self._step_s)
                if prompt.attachments:
                    detail.append(f"{len(prompt.attachments)} file(s) attached")
                    # Run was disabled while they uploaded: the submit waits for it.
                    prepared = dataclasses.replace(prepared, run_enabled=False)
            for applied in prepared.applied:
                yield applied
            if self._network_wanted():
                assert self.capture is not None
                watch = self.capture.watch()
            async with self.trace.step("submit"):
                await self._submit(prepared, watch)
            submitted = True
            source, reason = await self._source(watch)
            async with self.trace.step("answer") as detail:
                events = self._network(watch) if source is AnswerSource.NETWORK else self._dom(prepared)
                events = held_to_plan(events, plan)
                if source is AnswerSource.DOM:
                    log.warning("answer_from_dom", reason=reason, answers_from_dom=self.answers.dom + 1)
                self.answers = self.answers.counted(source, reason)
                detail.append(f"source {source.value}" + (f" ({reason})" if reason else ""))
                started = time.perf_counter()
                first = True
                async for event in events:
                    if first:
                        detail.append(f"first event after {(time.perf_counter() - started) * 1000:.0f} ms")
                        first = False
                    yield event
                complete = True
        except PlaywrightError as exc:
            if page.is_closed():
                raise EngineBroken("the browser page closed") from None
            raise DriverError("request", first_line(exc)) from None
        except DriverError as exc:
            log.warning("driver_failed", step=exc.step, key=exc.key, error=exc.message)
            raise
        finally:
            if watch is not None:
                watch.close()
            await self._reset(stop=submitted and not complete)

    @dataclass(frozen=True, slots=True)
    class Prepared:
        turns: int
        run_enabled: bool
        applied: tuple[SettingApplied, ...] = ()

    async def _prepare(self, prompt: Prompt, plan: ToolPlan) -> AIStudio.Prepared:
        """Model, temporary chat, settings and prompt, in one round trip when nothing is off.

        Each Playwright call is a round trip of a few milliseconds, and they add up to most
        of what a child adds to the time to first token, so the work is done inside the
        page. What a request leaves out goes back to the page's own default: the page keeps
        run settings from one chat to the next.
        """
        page = self._page()
        selectors = self.config.selectors
        wanted = bare_model(prompt.model)
        targets = self._targets(prompt)
        stops = "strict" if prompt.settings.stop else ("restore" if self._stops_set else None)
        # System and developer messages go in the System instructions field, not the prompt.
        messages = settings_panel.without_system(prompt.messages)
        text = (
            plan.preamble
            + conversation_text(messages, _files_by_message(prompt, messages))
            + plan.instruction
        )
        for attempt in (1, 2):
            result = await page.evaluate(
                scripts.PREPARE,
                [dict(selectors), POPUP_KEYS, wanted, targets, ADVANCED, stops, text, self._step_ms],
            )
            if result["missing"]:
                key = result["missing"]
                waited = self._step_s if key in _WAITED_FOR else None
                raise missing(_STEP_OF.get(key, "prepare"), key, selectors[key], waited)
            self.model = bare_model(result["label"])
            if same_model(result["label"], wanted):
                break
            if attempt == 2:
                if wanted not in self.models:
                    raise ModelNotOffered(
                        f"this site does not offer the model {wanted}; it offers {', '.join(self.models)}"
                    )
                raise DriverError(
                    "model",
                    f"shows {result['label']!r} after opening ?model={wanted}",
                    key="model_label",
                    selector=selectors["model_label"],
                )
            await self._load(wanted)
        if result["unsupported"]:
            name = result["unsupported"][0]
            key = "add_stop" if name == "stop" else name
            raise UnsupportedSetting(
                name,
                self.model or wanted,
                f" (If it should, the selector {key} may be out of date: see --site-config.)",
            )
        self._remember(prompt, result["defaults"])
        if plan.page != self._tools:
            # Before the switches: while function calling is on, Google Search is disabled.
            await self._set_tools(plan.page)
        applied: tuple[SettingApplied, ...] = ()
        model = self.model or wanted
        if (panel := self.panel.plan(prompt, model)) is not None:
            done = await page.evaluate(settings_panel.APPLY, [dict(selectors), panel, self._step_ms])
            applied = self.panel.read(done, prompt, model, selectors, self._step_s)
        if stops:
            await self._set_stops(prompt.settings.stop)
        return AIStudio.Prepared(
            turns=int(result.get("turns", 0)), run_enabled=bool(result["run_enabled"]), applied=applied
        )

    def _targets(self, prompt: Prompt) -> dict[str, dict[str, Any]]:
        """Each setting to set: the request's value (strict: refused if the page lacks it), or
        the page's default again where an earlier request moved it."""
        settings = prompt.settings
        targets: dict[str, dict[str, Any]] = {}
        for name, value in (
            ("temperature", settings.temperature),
            ("top_p", settings.top_p),
            ("max_tokens", settings.max_tokens),
        ):
            if value is not None:
                targets[name] = {"value": _number_text(value), "strict": True}
            elif name in self._dirty and name in self._defaults:
                targets[name] = {"value": self._defaults[name], "strict": False}
        return targets

    def _remember(self, prompt: Prompt, defaults: Mapping[str, str]) -> None:
        for name, value in defaults.items():
            self._defaults.setdefault(name, value)
        settings = prompt.settings
        asked = {
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "max_tokens": settings.max_tokens,
        }
        self._dirty = {name for name, value in asked.items() if value is not None and name in defaults}

    async def _set_stops(self, stops: Sequence[str]) -> None:
        """Stop sequences replace whatever the page had, so requests don't leak into each other.

        Real key presses: the chip input takes Enter only as a key the page believes."""
        page = self._page()
        selectors = self.config.selectors
        remove = page.locator(selectors["remove_stop"])
        for _ in range(50):  # bounded: a chip that will not go is a broken page, not a loop
            if not await remove.count():
                break
            await remove.first.click(timeout=self._step_ms)
        for stop in stops:
            await page.fill(selectors["add_stop"], stop, timeout=self._step_ms)
            await page.press(selectors["add_stop"], "Enter", timeout=self._step_ms)
        self._stops_set = bool(stops)
        await page.focus(selectors["prompt"], timeout=self._step_ms)  # the submit is a key press

    async def _set_tools(self, wanted: PageTools) -> None:
        """The Tools group as `wanted`: opened, toggles set, declarations and schema saved and
        read back (`child.site.tools`). The page keeps them from one chat to the next."""
        page = self._page()
        selectors = self.config.selectors
        self._tools = None  # unknown until done
        want = {"functions": wanted.functions, "schema": wanted.schema}
        result = await page.evaluate(SET_TOOLS, [dict(selectors), want, self._step_ms])
        if result["refused"] is not None:
            param = "response_format" if result["editor"] == "schema_editor" else "tools"
            raise NotSupported(param, f"the page's editor refused it ({result['refused'][:200]})")
        if result["failed"]:
            key = result["failed"]
            problem = f"did not take the setting within {self._step_s:g}s"
            raise DriverError("tools", problem, key=key, selector=selectors[key])
        self._tools = wanted
        await page.focus(selectors["prompt"], timeout=self._step_ms)  # the submit is a key press

    async def _submit(self, prepared: AIStudio.Prepared, watch: AnswerWatch | None) -> None:
        """Ctrl+Enter in the prompt; if no answer starts, one click on Run (never on Stop)."""
        page = self._page()
        selectors = self.config.selectors
        seconds = self.config.step_timeout_s
        if not prepared.run_enabled:
            try:
                enabled = f":is({selectors['run_button']}):not([disabled])"
                await page.wait_for_selector(enabled, timeout=seconds * 1000)
            except PlaywrightTimeout:
                raise DriverError(
                    "submit",
                    f"stayed disabled within {seconds:g}s after the prompt was typed",
                    key="run_button",
                    selector=selectors["run_button"],
                ) from None
        # A bare key press: PREPARE left the focus in the prompt (a Playwright press on a
        # selector first waits for the element to be stable: a few frames, ~100 ms).
        await page.keyboard.press("Control+Enter")
        if await self._started(prepared.turns, watch, SUBMIT_RETRY_S):
            return
        outcome = await page.evaluate(
            scripts.CLICK_RUN, [dict(selectors), POPUP_KEYS, prepared.turns, self._step_ms]
        )
        if outcome == "started":
            return
        if outcome != "clicked":
            raise DriverError("submit", f"is {outcome}", key="run_button", selector=selectors["run_button"])
        log.info("submit_clicked", reason="Ctrl+Enter started no answer")
        if await self._started(prepared.turns, watch, seconds):
            return
        raise DriverError(
            "submit",
            f"neither Ctrl+Enter nor a click started an answer within {seconds:g}s "
            f"(no Stop button `{selectors['stop_button'][:60]}`, no new model turn; a pop-up in the way?)",
            key="run_button",
            selector=selectors["run_button"],
        )

    async def _started(self, turns_before: int, watch: AnswerWatch | None, seconds: float) -> bool:
        page = self._page()
        arg = [dict(self.config.selectors), turns_before]
        if watch is not None:
            return await watch.wait_seen(seconds) or bool(await page.evaluate(scripts.STARTED, arg))
        # Usually true at once (the page turns Run into Stop as it sends): one round trip.
        if await page.evaluate(scripts.STARTED, arg):
            return True
        try:
            await page.wait_for_function(scripts.STARTED, arg=arg, timeout=seconds * 1000)
        except PlaywrightTimeout:
            return False
        return True

    def _network_wanted(self) -> bool:
        return self.config.answer_source is AnswerSource.NETWORK and self.capture is not None

    async def _source(self, watch: AnswerWatch | None) -> tuple[AnswerSource, str | None]:
        """Where this answer is read, and if from the DOM, why."""
        if self.config.answer_source is AnswerSource.DOM:
            return AnswerSource.DOM, "answer_source = dom in the site config"
        if self.capture is None or watch is None:
            return AnswerSource.DOM, "the capture is disabled"
        if await watch.wait_seen(CAPTURE_GRACE_S):
            return AnswerSource.NETWORK, None
        return AnswerSource.DOM, f"the capture saw no answer request within {CAPTURE_GRACE_S:g}s"

    # -- the answer -----------------------------------------------------------------------

    async def _network(self, watch: AnswerWatch | None) -> AsyncGenerator[AnswerEvent, None]:
        """The capture's events, bounded: the first within the start timeout, all within the
        answer timeout."""
        assert watch is not None
        events = watch.events().__aiter__()
        deadline = time.monotonic() + self.config.start_timeout_s
        end = time.monotonic() + self.config.answer_timeout_s
        while True:
            try:
                event = await asyncio.wait_for(anext(events), max(0.0, deadline - time.monotonic()))
            except StopAsyncIteration:
                raise DriverError("answer", "the capture's stream ended without a finish") from None
            except TimeoutError:
                raise DriverError("answer", "the capture's stream went quiet: no event in time") from None
            deadline = end
            if isinstance(event, AnswerError):
                raise self._answer_error(event)
            yield event
            if isinstance(event, Finish):
                return

    def _answer_error(self, event: AnswerError) -> EngineError:
        """The site's refusal read from its network answer, for the model it concerns."""
        said = event.message[:200]
        refusal = site_refusal(self.model or "", said, http_status=event.status)
        if isinstance(refusal, QuotaExhausted | RateLimited):
            refusal.retry_after = self._quota_seconds(said.lower()) or refusal.retry_after
        if isinstance(refusal, PermissionDenied):
            self._reload_next = True  # a fresh page makes a fresh proof
        if refusal is not None:
            return refusal
        error = EngineError(f"the site answered with an error: {said}")
        error.status, error.code = event.status, event.code
        return error

    async def _dom(self, prepared: AIStudio.Prepared) -> AsyncGenerator[AnswerEvent, None]:
        """The labelled fallback: the rendered answer's text as it grows, then a Finish
        (reason `stop`, usage left to the child's estimate: the page shows neither)."""
        self._last_read = None
        async for delta in self._stream(prepared.turns):
            yield TextDelta(delta)
        yield Finish()

    async def _stream(self, turns_before: int) -> AsyncIterator[str]:
        sent = ""
        started = generated = False
        deadline = time.monotonic() + self.config.start_timeout_s
        while True:
            state = await self._next_report(deadline)
            self._check_page_error(state)
            if not started and (state.turns > turns_before or state.generating):
                started = True
                deadline = time.monotonic() + self.config.answer_timeout_s
            if not started:
                continue
            generated = generated or state.generating
            done = state.finished or (generated and not state.generating and state.turns > turns_before)
            # While it grows, only whole lines: the page renders a line again as its markdown
            # completes ("# Ti" becomes the heading "Title"), and a delta cannot be taken back.
            text = state.text if done else state.text[: state.text.rfind("\n") + 1]
            if text.startswith(sent) and len(text) > len(sent):
                yield text[len(sent) :]
                sent = text
            elif done and not text.startswith(sent):
                log.warning("answer_from_dom_rewritten", sent_chars=len(sent), final_chars=len(text))
            if done:
                return

    async def _next_report(self, deadline: float) -> PageState:
        """The page's state once it differs from the last one read, polled: a binding or an
        observer left in the page would be something its own scripts could find."""
        page = self._page()
        selectors = dict(self.config.selectors)
        while True:
            report = await page.evaluate(scripts.READ_ANSWER, selectors)
            state = PageState(
                turns=int(report.get("turns", 0)),
                text=str(report.get("text", "")),
                generating=bool(report.get("generating")),
                finished=bool(report.get("finished")),
                error=str(report.get("error", "")),
                toast=str(report.get("toast", "")),
            )
            if state != self._last_read:
                self._last_read = state
                return state
            if time.monotonic() >= deadline:
                raise missing("answer", "finished", self.config.selectors["finished"])
            await asyncio.sleep(DOM_POLL_S)

    def _check_page_error(self, state: PageState) -> None:
        """The error callout of the turn, or a toast: quota, permission, or anything else."""
        for said in (state.error, state.toast):
            if not said:
                continue
            lowered = said.lower()
            seconds = self._quota_seconds(lowered)
            if seconds is not None:
                # The page's words: a rate limit is the account's, a quota the model's.
                refusal = site_refusal(self.model or "", said, http_status=429) or QuotaExhausted(said[:200])
                refusal.retry_after = seconds
                raise refusal
            if _any_in(lowered, PERMISSION_PATTERNS):
                self._reload_next = True
                raise PermissionDenied(f"the site says: {said[:200]}")
            if said is state.error:
                raise DriverError("answer", f"the page shows an error: {said[:200]}")

    def _quota_seconds(self, lowered: str) -> int | None:
        for pattern, seconds in self.config.quota_patterns.items():
            if pattern in lowered:
                return seconds
        return None

    def _check_toast(self, toast: str) -> None:
        self._check_page_error(PageState(toast=toast))

    # -- reset ----------------------------------------------------------------------------

    async def _reset(self, *, stop: bool) -> None:
        """Back to an empty temporary chat, and the empty chat's selectors checked.

        New chat → Discard and continue in one round trip; when that fails (a button
        moved, a dialog in the way, a refused proof), a fresh page is always clean."""
        page = self.page
        if page is None or page.is_closed():
            return
        selectors = self.config.selectors
        reason: str | None = "the site refused the page's proof" if self._reload_next else None
        async with self.trace.step("reset") as detail:
            if reason is None:
                try:
                    result = await page.evaluate(
                        scripts.RESET,
                        [dict(selectors), POPUP_KEYS, check_request(selectors), stop, self._step_ms],
                    )
                except PlaywrightError as exc:
                    reason = first_line(exc)
                else:
                    if result["failed"]:
                        key = result["key"]
                        reason = missing(
                            result["failed"], key, selectors.get(key, ""), self.config.step_timeout_s
                        ).message
                    else:
                        self.drift.update(read_matches(selectors, result["matches"]))
                        detail.append(
                            "stopped"
                            if result["stopped"]
                            else "discarded"
                            if result["discarded"]
                            else "empty"
                        )
            if reason is not None:
                log.warning("reset_by_reload", reason=reason)
                detail.append(f"reload: {reason}")
                try:
                    await self._load(self.model)
                except (PlaywrightError, EngineError) as exc:
                    log.warning("reload_failed", error=getattr(exc, "message", first_line(exc)))

    async def _on_response(self, response: Response) -> None:
        if MODELS_RESPONSE_PATTERN not in response.url:
            return
        try:
            names = tuple(dict.fromkeys(_MODEL_NAME.findall(await response.text())))
        except PlaywrightError:
            return
        if names:
            self.models = names
            self._models_seen.set()

    @property
    def _step_s(self) -> float:
        return self.config.step_timeout_s

    @property
    def _step_ms(self) -> float:
        return self.config.step_timeout_s * 1000

    def _page(self) -> Page:
        if self.page is None or self.page.is_closed():
            raise EngineBroken("the browser page is closed")
        return self.page


def _files_by_message(prompt: Prompt, messages: Sequence[Mapping[str, Any]]) -> dict[int, tuple[str, ...]]:
    """The names of the files each message of the prompt text carried, by its index there
    (system messages go to their own field, so indices shift)."""
    files = uploads.file_labels(prompt.attachments)
    position = {id(message): index for index, message in enumerate(messages)}
    return {
        position[id(prompt.messages[old])]: names
        for old, names in files.items()
        if id(prompt.messages[old]) in position
    }


def _number_text(value: float | int) -> str:
    """A setting as the page's number field shows it: 1 not 1.0, 0.5 as 0.5."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _any_in(text: str, patterns: Sequence[str]) -> bool:
    return any(pattern in text for pattern in patterns)


def _origin(url: str) -> str:
    return "/".join(url.split("/")[:3])
