"""coordinator: a folder of logged-in browser profiles behind one OpenAI-compatible endpoint."""

import sys

__version__ = "0.1.0"


def _import_structlog_without_rich() -> None:
    """Import structlog with rich hidden from it, before any module of ours imports it.

    structlog imports rich whenever it is installed (typer and camoufox install it), for the
    tracebacks of its console renderer: a tenth of a second at every start of the
    coordinator, of each child and of every CLI call. Our logs are JSON but on a terminal,
    where structlog's plain tracebacks do. Rich stays importable for the others (typer's
    help) afterwards. The child's package imports this one first, for the same effect.
    """
    if "structlog" in sys.modules or "rich" in sys.modules:
        return  # too late, or someone wants rich anyway
    sys.modules["rich"] = None  # type: ignore[assignment]  # an import of it raises ImportError
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]


_import_structlog_without_rich()
