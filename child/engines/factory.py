"""Which engine a child runs: the one named on its command line.

Apart from the interface (`base`) so that neither engine imports the other, and the
settings are read here, not in the engines' room.
"""

from __future__ import annotations

from collections.abc import Mapping

from child.engines.base import Engine
from child.engines.mock import MockEngine, MockSettings
from child.engines.profile_writer import ProfileWriter
from child.settings import ChildSettings
from coordinator.protocol.link import EngineName


def create_engine(settings: ChildSettings, environ: Mapping[str, str]) -> Engine:
    """The engine named on the command line, or EngineConfigError if it cannot be had."""
    if settings.engine == EngineName.MOCK:
        writer = ProfileWriter.from_settings(settings)
        return MockEngine(MockSettings.from_env(environ, settings.profile), writer)
    # Imported here: a mock child never loads Playwright.
    from child.engines.browser import create_browser_engine

    return create_browser_engine(settings, environ)
