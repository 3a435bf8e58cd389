"""Which API a path speaks, and errors re-dressed in its shape at the edge."""

from __future__ import annotations

import json

from coordinator.serving import dialects
from coordinator.serving.routes import error_body
from tests.support.imports import heavy, imported_by


def test_each_adapter_route_has_its_dialect_and_its_subpaths_too() -> None:
    assert dialects.of_path("/v1/responses") is dialects.RESPONSES
    assert dialects.of_path("/v1/messages") is dialects.MESSAGES
    assert dialects.of_path("/v1/messages/count_tokens") is dialects.MESSAGES
    assert dialects.of_path("/v1/messagesx") is None
    assert dialects.of_path("/v1/chat/completions") is None


def test_an_error_on_the_messages_route_is_anthropics() -> None:
    body = error_body(429, "queue_full", "Every child is busy.")
    dressed = json.loads(dialects.dress_error("/v1/messages", 429, body))
    assert dressed == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Every child is busy."},
    }


def test_an_error_naming_a_chat_field_names_the_messages_field_it_came_from() -> None:
    body = error_body(
        400, "unsupported_parameter", "'reasoning_effort' is not offered.", param="reasoning_effort"
    )
    dressed = json.loads(dialects.dress_error("/v1/messages", 400, body))
    assert dressed["error"]["message"].endswith(
        "(On /v1/messages that is `thinking (or output_config.effort)`.)"
    )


def test_errors_elsewhere_keep_openais_shape() -> None:
    body = error_body(404, "model_not_found", "No such model.")
    assert dialects.dress_error("/v1/responses", 404, body) == body
    assert dialects.dress_error("/v1/chat/completions", 404, body) == body


def test_a_body_that_is_not_an_error_object_still_dresses() -> None:
    dressed = json.loads(dialects.dress_error("/v1/messages", 502, b"not json"))
    assert dressed["error"]["type"] == "api_error"
    assert dressed["error"]["message"]


def test_a_plan_is_a_chat_body_and_its_translations() -> None:
    plan = dialects.MESSAGES.plan(
        json.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}).encode(),
        "req_1",
        1_700_000_000.0,
    )
    assert json.loads(plan.chat)["messages"] == [{"role": "user", "content": "hi"}]
    assert plan.encoder().start().startswith(b"event: message_start\n")
    completion = {"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}]}
    assert plan.whole(completion)["content"] == [{"type": "text", "text": "x"}]


def test_the_run_path_imports_the_translations_httpx_and_rich_only_when_used() -> None:
    """Start-up time: the server's modules leave the Responses and Anthropic translations to
    their first request, httpx to --fetch-image-urls, and rich out."""
    modules = imported_by(["-c", "import coordinator.cli.main, coordinator.runtime"])
    assert "coordinator.serving.dialects" in modules
    assert heavy(modules, "coordinator.protocol.responses", "coordinator.protocol.anthropic") == set()
    assert heavy(modules, "httpx", "coordinator.serving.image_urls", "rich", "jsonschema") == set()
