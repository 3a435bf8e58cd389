"""The replica's two HTML pages: the login form, and the chat page put together from its
markup (`markup`), its script (`script_lib`, `script`) and the data of one page load.

Everything is inline: the page must load on a machine with no network beyond the
replica itself. The script runs in a closure and removes its own element, so the page's
proof secret is not lying in the DOM for a driver to pick up.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from child.replica import uploads
from child.replica.config import ReplicaConfig, display_name
from child.replica.drift import apply_drift
from child.replica.markup import BODY, PAGE, STYLE, TEMPLATES
from child.replica.script import PAGE_SCRIPT
from child.replica.script_lib import LIBRARY
from child.replica.settings_panel import SCRIPT as SETTINGS_SCRIPT
from child.replica.settings_panel import STYLE as SETTINGS_STYLE
from child.replica.settings_panel import TEMPLATES as SETTINGS_TEMPLATES
from child.replica.state import PageLoad
from child.replica.tools import SCRIPT as TOOLS_SCRIPT
from child.replica.tools import STYLE as TOOLS_STYLE
from child.replica.tools import TEMPLATES as TOOLS_TEMPLATES
from child.replica.wire import PERMISSION_DENIED, RESOURCE_EXHAUSTED

# What the page says when the answer endpoint refuses, by error code (spec-11 B).
QUOTA_MESSAGE: Final = "You've reached your rate limit. Please try again later."
PERMISSION_MESSAGE: Final = "Failed to generate content: permission denied. Please try again."
ERROR_MESSAGES: Final = {PERMISSION_DENIED[0]: PERMISSION_MESSAGE, RESOURCE_EXHAUSTED[0]: QUOTA_MESSAGE}

SCRIPT: Final = (
    '\n(() => {\n  "use strict";\n  const BOOT = __BOOT__;\n  document.currentScript.remove();\n'
    + LIBRARY
    + TOOLS_SCRIPT  # before the page script, whose start renders the settings
    + SETTINGS_SCRIPT
    + PAGE_SCRIPT
    + uploads.SCRIPT
    + "})();\n"
)

LOGIN_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<title>Sign in - Replica AI Studio</title>
<style>
  body { margin: 0; font: 14px/1.5 system-ui, sans-serif; background: #f1f3f4; color: #1f1f1f; }
  main { max-width: 380px; margin: 10vh auto; padding: 32px; background: #fff; border-radius: 12px; }
  h1 { font-size: 22px; margin: 0 0 4px; }
  label { display: block; margin-top: 16px; }
  input { width: 100%; box-sizing: border-box; padding: 8px; font: inherit; }
  button { margin-top: 24px; padding: 8px 24px; font: inherit; border: 0; border-radius: 18px;
           background: #0b57d0; color: #fff; cursor: pointer; }
</style>
</head>
<body>
<main>
  <h1>Sign in</h1>
  <p>to continue to Replica AI Studio. Any email and password will do.</p>
  <form method="post" action="/login">
    <input type="hidden" name="continue" value="__CONTINUE__">
    <label>Email <input type="text" name="email" autocomplete="username" autofocus></label>
    <label>Password <input type="password" name="password" autocomplete="current-password"></label>
    <button type="submit" id="sign-in">Sign in</button>
  </form>
</main>
</body>
</html>
"""


def login_page(continue_to: str) -> str:
    return LOGIN_PAGE.replace("__CONTINUE__", html.escape(continue_to, quote=True))


def chat_page(boot: Mapping[str, Any], drift: Iterable[str] = ()) -> str:
    """The chat page for one load; `boot` is what its script starts from (see `page_boot`)."""
    page = (
        PAGE.replace("__STYLE__", STYLE + uploads.STYLE + TOOLS_STYLE + SETTINGS_STYLE)
        .replace("__BODY__", BODY)
        .replace("__MEDIA_CHIPS__", uploads.CHIPS)
        .replace("__ADD_MEDIA__", uploads.BUTTON)
        .replace("__TEMPLATES__", TEMPLATES + uploads.TEMPLATES + TOOLS_TEMPLATES + SETTINGS_TEMPLATES)
        .replace("__SCRIPT__", SCRIPT)
    )
    page = apply_drift(page, drift)
    # The boot data goes in last, untouched by drift; "<" escaped so it cannot end the script.
    return page.replace("__BOOT__", json.dumps(boot).replace("<", "\\u003c"))


def page_boot(config: ReplicaConfig, page: PageLoad, api_url: str) -> dict[str, Any]:
    """What one page load's script knows: its models, its id and proof secret, the API's origin."""
    models = [
        {
            "id": model,
            "displayName": display_name(model),
            "sampling": model not in config.no_sampling_models,
            "thinking": model in config.thinking_models,
            "levels": list(config.thinking_levels.get(model, ())),
            "defaultLevel": config.default_level(model),
            "grounding": model in config.grounding_models,
        }
        for model in config.models
    ]
    return {
        "pageId": page.page_id,
        "proofKey": page.proof_key,
        "apiUrl": api_url,
        "models": models,
        "defaultModel": config.default_model,
        "popups": config.popups,
        "popupDelayMs": config.popup_delay_ms,
        "errorMessages": ERROR_MESSAGES,
        "uploadTypes": list(uploads.UPLOAD_TYPES),
        "uploadMs": config.upload_ms,
    }
