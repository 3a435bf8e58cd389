"""Reading a server-sent-event answer as a client sees it: each `data:` payload in order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

DONE = "[DONE]"


def payloads(response: httpx.Response) -> Iterator[dict[str, Any] | str]:
    """Each event's data as it arrives: a JSON object, or `[DONE]` as the string it is."""
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue
        data = line.removeprefix("data:").strip()
        if data == DONE:
            yield DONE
        else:
            event = json.loads(data)
            assert isinstance(event, dict), f"an event that is not an object: {data[:200]}"
            yield event
