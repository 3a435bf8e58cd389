"""The child's command line: parse, set up logging, run; exit 78 on a configuration error.

Exit codes are the coordinator's cue: 0 stopped on request, 1 failed to boot (retry with
backoff), 78 configured wrongly (do not retry until something changes): see
`coordinator.protocol.link`.
"""

from __future__ import annotations

import os
import sys

import structlog

from child.engines.base import EngineConfigError
from child.engines.factory import create_engine
from child.http.server import run
from child.settings import ConfigError, load_settings
from coordinator.protocol import logs
from coordinator.protocol.link import EXIT_CONFIG


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings(sys.argv[1:] if argv is None else argv, os.environ)
        engine = create_engine(settings, os.environ)
    except (ConfigError, EngineConfigError) as exc:
        print(f"child: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    # JSON lines on stdout, each with the profile: the coordinator files them per child, as
    # they come, in the stdlib's spacing that readers of those files already expect.
    logs.configure(json=True, stream=sys.stdout, context=True, compact=False)
    structlog.contextvars.bind_contextvars(profile=settings.profile)
    return run(settings, engine)


if __name__ == "__main__":
    sys.exit(main())
