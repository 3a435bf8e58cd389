"""Fuzzing the public API: whatever arrives, the answer is a 2xx or a 4xx in OpenAI's shape.

Schemathesis sends what GET /openapi.json describes, and what it does not (negative
cases); Hypothesis adds raw bodies, arbitrary JSON, odd headers and odd paths, and, below
any HTTP client, mangled requests and random bytes on a socket. Never a 5xx, a traceback
or a hang, and the coordinator serves normally afterwards.
"""

from __future__ import annotations

import json
import re
import socket
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Err

from tests.support.coordinator import Coordinator, Runs

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
# Generating the cases is CPU work: about 100 s for the longest on two cores shared with the
# suite's other workers, too close to the suite's 120 s limit.
pytestmark = pytest.mark.timeout(360)
VALID = {"model": "mock", "messages": [{"role": "user", "content": "still here?"}]}


@pytest.fixture(scope="module")
def fuzzed(module_runs: Runs) -> Coordinator:
    return module_runs.start(("f1", "f2"), args=["--max-body-bytes", "100000", "--queue-timeout", "5"])


def api_operations(run: Coordinator) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{run.url}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operations.append(result.ok())
    return operations


def assert_openai_answer(response: httpx.Response | Any) -> None:
    assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    assert "Traceback" not in response.text
    if response.status_code >= 400 and response.status_code != 499:
        error = json.loads(response.text)["error"]
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["type"], str)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_what_the_description_allows_and_forbids(fuzzed: Coordinator, mode: GenerationMode) -> None:
    operations = api_operations(fuzzed)
    assert {op.path for op in operations} >= {"/v1/chat/completions", "/v1/models", "/admin/children"}
    fuzzed_paths = set()
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @FUZZ
        def check(case: Any) -> None:
            assert_openai_answer(case.call(base_url=fuzzed.url, timeout=30))

        try:
            check()
        except Unsatisfiable:
            # Nothing invalid to send: the operation takes no input, or only strings of any form.
            assert mode is GenerationMode.NEGATIVE
            continue
        fuzzed_paths.add(operation.path)
    assert "/v1/chat/completions" in fuzzed_paths


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
MESSAGE_LIKE = st.fixed_dictionaries(
    {
        "messages": st.lists(
            st.dictionaries(st.sampled_from(["role", "content", "name"]), JSON_VALUES), max_size=3
        )
    },
    optional={
        "model": JSON_VALUES | st.just("mock"),
        "stream": JSON_VALUES,
        "stream_options": JSON_VALUES,
        "temperature": JSON_VALUES,
        "top_p": JSON_VALUES,
        "max_tokens": JSON_VALUES,
        "stop": JSON_VALUES,
    },
)


@given(body=st.binary(max_size=300))
@FUZZ
def test_raw_bytes(fuzzed: Coordinator, body: bytes) -> None:
    assert_openai_answer(fuzzed.post("/v1/chat/completions", content=body))


@given(body=JSON_VALUES | MESSAGE_LIKE)
@FUZZ
def test_arbitrary_json(fuzzed: Coordinator, body: object) -> None:
    assert_openai_answer(fuzzed.post("/v1/chat/completions", json=body))


# Printable ASCII without surrounding spaces: what an HTTP client will send at all.
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200).map(str.strip)


@given(request_id=HEADER_TEXT, content_type=HEADER_TEXT, authorization=HEADER_TEXT)
@FUZZ
def test_odd_headers(fuzzed: Coordinator, request_id: str, content_type: str, authorization: str) -> None:
    headers = {"X-Request-ID": request_id, "Content-Type": content_type, "Authorization": authorization}
    response = fuzzed.post("/v1/chat/completions", content=json.dumps(VALID).encode(), headers=headers)
    assert_openai_answer(response)
    if response.status_code == 200:
        echoed = response.headers["x-request-id"]
        assert echoed == request_id or echoed.startswith("req_")


@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    path=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#"), max_size=60),
)
@FUZZ
def test_odd_paths_and_methods(fuzzed: Coordinator, method: str, path: str) -> None:
    response = httpx.request(method, f"{fuzzed.url}/{path.lstrip('/')}", timeout=10)
    assert response.status_code < 500, f"{method} /{path}: {response.status_code} {response.text[:300]}"


def _request_bytes() -> bytes:
    body = json.dumps(VALID).encode()
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


@st.composite
def mangled_requests(draw: st.DrawFn) -> bytes:
    """A valid request with bytes replaced, inserted and cut, anywhere, head included."""
    data = bytearray(_request_bytes())
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["replace", "insert", "cut"]))
        chunk = draw(st.binary(min_size=1, max_size=8))
        if edit == "insert" or at == len(data):
            data[at:at] = chunk
        elif edit == "replace":
            data[at : at + len(chunk)] = chunk
        else:
            del data[at : at + len(chunk)]
    return bytes(data)


@given(data=mangled_requests() | st.binary(max_size=300))
@FUZZ
def test_raw_bytes_on_the_socket(fuzzed: Coordinator, data: bytes) -> None:
    """Below any HTTP client: whatever bytes come, every answer is a 2xx or a 4xx (or the
    connection closes), and the coordinator does not wait on a client that has finished."""
    with socket.create_connection(("127.0.0.1", fuzzed.port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # all sent: the coordinator must answer or close, not wait
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    for status_line in re.findall(rb"HTTP/1\.1 (\d{3}) ", received):
        assert int(status_line) < 500, received[:500]
    assert b"Traceback" not in received


def test_the_coordinator_still_serves_after_the_fuzzing(fuzzed: Coordinator) -> None:
    response = fuzzed.post("/v1/chat/completions", json=VALID)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "echo: still here?"
    assert not fuzzed.events("internal_error")
    assert all(child["state"] == "ready" for child in fuzzed.children().values())
