"""Anthropic's official client pointed at a running coordinator's `/v1/messages`."""

from __future__ import annotations

from typing import Any

from anthropic import Anthropic

from tests.support.coordinator import Coordinator


def anthropic_client(coordinator: Coordinator, **kwargs: Any) -> Anthropic:
    """A client as Claude Code's is set up: the base URL without `/v1`, the key as `x-api-key`."""
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("timeout", 30)
    kwargs.setdefault("api_key", coordinator.api_key or "unused")
    return Anthropic(base_url=coordinator.url, **kwargs)
