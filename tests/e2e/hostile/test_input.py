"""Bad input is the client's 400, with `param`, at the edge: no child ever sees it (issue 10)."""

from __future__ import annotations

import json

import openai
import pytest
from openai.types.chat import ChatCompletionUserMessageParam

from tests.support.coordinator import Coordinator, Runs


@pytest.fixture(scope="module")
def run(module_runs: Runs) -> Coordinator:
    return module_runs.start(("a", "b"))


def user(content: object) -> bytes:
    return json.dumps({"model": "mock", "messages": [{"role": "user", "content": content}]}).encode()


IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
BAD_IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,not base64!"}}
WEB_IMAGE = {"type": "image_url", "image_url": {"url": "http://127.0.0.1/a.png"}}
CASES = {
    "null-text": (user([{"type": "text", "text": None}]), "messages[0].content[0].text"),
    "number-text": (user([{"type": "text", "text": 7}]), "messages[0].content[0].text"),
    "part-not-object": (user(["hello"]), "messages[0].content[0]"),
    "part-without-type": (user([{"text": "hello"}]), "messages[0].content[0].type"),
    "unknown-type": (user([{"type": "video", "text": "hello"}]), "messages[0].content[0].type"),
    "lone-surrogate": (b'{"messages": [{"role": "user", "content": "\\ud800"}]}', "messages[0].content"),
    "surrogate-in-model": (
        b'{"model": "mock\\udfff", "messages": [{"role": "user", "content": "hi"}]}',
        "model",
    ),
    "empty": (user(""), "messages"),
    "whitespace": (user(" \n\t "), "messages"),
    "image-not-base64": (user([BAD_IMAGE]), "messages[0].content[0].image_url.url"),
    "web-image": (
        user([{"type": "text", "text": "what is this?"}, WEB_IMAGE]),
        "messages[0].content[1].image_url.url",
    ),
    "deep-nesting": (b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None),
}


@pytest.mark.parametrize(("raw", "param"), list(CASES.values()), ids=list(CASES))
def test_bad_input_is_a_400_naming_the_field_before_any_child(
    run: Coordinator, raw: bytes, param: str | None
) -> None:
    request_id = f"bad-{len(raw)}-{raw[-40:].hex()}"
    response = run.post(
        "/v1/chat/completions",
        content=raw,
        headers={"content-type": "application/json", "x-request-id": request_id},
        timeout=10,
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert response.headers["x-coordinator-child"] == "-"
    assert not any(request_id in path.read_text() for path in run.log_dir.glob("*.log"))


def test_an_image_part_reaches_the_engine_byte_for_byte(run: Coordinator) -> None:
    message: ChatCompletionUserMessageParam = {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
    }
    answer = run.openai().chat.completions.create(model="mock", messages=[message])
    # The mock names each file it was given: the PNG signature's 8 bytes, decoded once.
    assert (
        answer.choices[0].message.content == "echo: what is this? [files: image-1.png (image/png, 8 bytes)]"
    )
    bad: ChatCompletionUserMessageParam = {"role": "user", "content": [BAD_IMAGE]}  # type: ignore[list-item]
    with pytest.raises(openai.BadRequestError) as refused:
        run.openai().chat.completions.create(model="mock", messages=[bad])
    assert refused.value.param == "messages[0].content[0].image_url.url"
