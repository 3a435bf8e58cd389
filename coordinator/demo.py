"""The embedded default: demo profiles that let a newcomer see answers with no account.

Until the browser engines land, the demo runs mock children; the profiles are valid
storage-state files holding a placeholder cookie, written to a temporary folder.
"""

from __future__ import annotations

import json
from pathlib import Path

DEMO_PROFILES = ("demo-1", "demo-2", "demo-3")
# A visible pace, so that streaming shows as streaming.
DEMO_ENV = {"MOCK_FIRST_TOKEN_MS": "300", "MOCK_TOKEN_MS": "60"}


def write_profiles(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in DEMO_PROFILES:
        path = folder / f"{name}.json"
        state = {
            "cookies": [
                {
                    "name": "demo_session",
                    "value": name,
                    "domain": "127.0.0.1",
                    "path": "/",
                    "expires": -1,
                    "httpOnly": True,
                    "secure": False,
                    "sameSite": "Lax",
                }
            ],
            "origins": [],
        }
        path.write_text(json.dumps(state, indent=2))
        path.chmod(0o600)
        paths.append(path)
    return paths
