"""`coordinator check-site`: the command line of one checked request against the site.

The check itself runs in the child's code (`python -m child.check_site`), in a process
of its own, so that the coordinator holds no browser code; this only builds its argv.
"""

from __future__ import annotations

import sys
from pathlib import Path


def argv(
    profile: Path,
    *,
    site_url: str | None = None,
    site_config: Path | None = None,
    engine: str = "auto",
    browser_path: Path | None = None,
    headless: bool = True,
    prompt: str | None = None,
    model: str | None = None,
    as_json: bool = False,
    ca_file: Path | None = None,
) -> list[str]:
    """The command that checks the site with `profile`, as the flags ask."""
    command = [sys.executable, "-m", "child.check_site", "--profile", str(profile), "--engine", engine]
    command.append("--headless" if headless else "--no-headless")
    for flag, value in (
        ("--site-url", site_url),
        ("--site-config", site_config),
        ("--browser-path", browser_path),
        ("--prompt", prompt),
        ("--model", model),
        ("--ca-file", ca_file),
    ):
        if value:
            command += [flag, str(value)]
    if as_json:
        command.append("--json")
    return command
