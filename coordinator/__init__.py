"""coordinator: a folder of logged-in browser profiles behind one OpenAI-compatible endpoint."""

import sys

__version__ = "0.1.0"


def _keep_rich_out() -> None:
    """Keep rich out of our processes, before any module of ours imports structlog or httpx.

    Two libraries import rich whenever it is installed (typer and camoufox install it):
    structlog, for its console renderer's tracebacks, and httpx, for its own command line.
    With pygments and click that is a tenth of a second or more at every start of the
    coordinator, of each child and of every CLI call. Our logs are JSON but on a terminal,
    where structlog's plain tracebacks do; httpx's command line no process of ours runs.
    Rich stays importable for whoever asks for it (typer's help). The child's package
    imports this one first, for the same effect.
    """
    # httpx imports its command line in a try and stubs it on ImportError, which this raises.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    if "structlog" in sys.modules or "rich" in sys.modules:
        return  # too late, or someone wants rich anyway
    sys.modules["rich"] = None  # type: ignore[assignment]  # an import of it raises ImportError
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]


_keep_rich_out()
