"""Drift: which selectors of the empty chat no longer match the page.

The page changes without notice; a renamed element should be seen at once, not at the
first failed request. The driver checks the zero-state keys (`config.ZERO_STATE_KEYS`) at
start and after every reset, in the same round trip as the reset itself, and keeps the
result here: `/health` reports it as `selectors_missing`, the child's log gets one line
per change, and `check-site` prints which alternative of each selector matched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog
from playwright.async_api import Page

from child.site import scripts
from child.site.config import ZERO_STATE_KEYS, SiteConfig, alternatives

log = structlog.get_logger("child.site.drift")


@dataclass(frozen=True, slots=True)
class SelectorMatch:
    """One key's check: which of its alternatives matched first (-1: none)."""

    key: str
    selector: str
    alternative: int
    alternatives: int

    @property
    def matched(self) -> bool:
        return self.alternative >= 0

    @property
    def fallback(self) -> bool:
        """Matched, but not by the newest form: worth updating before that one goes too."""
        return self.alternative > 0

    @property
    def matched_selector(self) -> str | None:
        return alternatives(self.selector)[self.alternative] if self.matched else None


def check_request(
    selectors: Mapping[str, str], keys: Sequence[str] = ZERO_STATE_KEYS
) -> dict[str, list[str]]:
    """The argument of the page's check: each key's alternatives."""
    return {key: alternatives(selectors[key]) for key in keys}


def read_matches(selectors: Mapping[str, str], found: Mapping[str, int]) -> tuple[SelectorMatch, ...]:
    """The page's answer to `check_request`, as matches in the order asked."""
    return tuple(
        SelectorMatch(key, selectors[key], int(index), len(alternatives(selectors[key])))
        for key, index in found.items()
    )


async def missing_selectors(page: Page, config: SiteConfig) -> tuple[str, ...]:
    """The zero-state keys that match nothing on `page` now (one evaluate)."""
    found = await page.evaluate(scripts.MATCHES, check_request(config.selectors))
    return tuple(match.key for match in read_matches(config.selectors, found) if not match.matched)


class Drift:
    """The last check's result; a change of the missing keys is logged once, as it happens."""

    def __init__(self) -> None:
        self.matches: tuple[SelectorMatch, ...] = ()
        self.missing: tuple[str, ...] = ()
        self.checked = False

    def update(self, matches: tuple[SelectorMatch, ...]) -> None:
        missing = tuple(match.key for match in matches if not match.matched)
        if missing != self.missing or not self.checked:
            if missing:
                log.warning(
                    "selectors_missing",
                    missing=list(missing),
                    selectors={m.key: _clip(m.selector) for m in matches if not m.matched},
                    hint="the page changed: fix them with --site-config, check with `coordinator check-site`",
                )
            elif self.missing:
                log.info("selectors_missing", missing=[], fixed=list(self.missing))
        self.matches = matches
        self.missing = missing
        self.checked = True


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
