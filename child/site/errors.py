"""The driver's failures, each saying which step of the page failed and how.

A client, the child's log and `check-site` all read the same sentence, e.g.
"step submit: selector run_button (`ms-run-button button…`) matched nothing within 10s",
so a user who sees it knows which `[selectors]` entry of `--site-config` to fix.
"""

from __future__ import annotations

from child.engines.base import EngineError

_SHOWN = 80  # of a selector, in a message


class DriverError(EngineError):
    """A step of the page went wrong: the site changed, or a pop-up or dialog is in the way.

    A 502: the site behind this child answered unlike itself; the coordinator tries
    another child, and the failures count against this one."""

    status = 502
    code = "site_changed"

    def __init__(
        self, step: str, problem: str, *, key: str | None = None, selector: str | None = None
    ) -> None:
        self.step = step
        self.key = key
        self.selector = selector
        where = f"selector {key} (`{_clip(selector or '')}`) " if key else ""
        super().__init__(f"step {step}: {where}{problem}")


def missing(step: str, key: str, selector: str, seconds: float | None = None) -> DriverError:
    """A selector that matched nothing (within `seconds`, if it was waited for)."""
    within = f" within {seconds:g}s" if seconds is not None else ""
    return DriverError(step, f"matched nothing{within}", key=key, selector=selector)


class UnsupportedSetting(EngineError):
    """The request set something the page does not offer for its model: the client's to fix."""

    status = 400
    code = "unsupported_parameter"

    def __init__(self, param: str, model: str, hint: str = "") -> None:
        super().__init__(f"'{param}' is not offered by the model {model} on this site; leave it out.{hint}")
        self.param = param


class ModelNotOffered(EngineError):
    """The page fell back to its default model: it does not offer the one asked for."""

    status = 404
    code = "model_not_found"


def _clip(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"
