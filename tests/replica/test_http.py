"""The replica over HTTP without a browser: the page origin (login, the chat page, the run
record) and the answer endpoint over HTTPS, read with httpx trusting only the replica's CA:
the wire format frame by frame, gzip streaming, the proof, quota and permission errors,
CORS, a client that goes away mid-answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from child.replica import (
    DRIFTS,
    GENERATE_PATH,
    LIST_MODELS_PATH,
    SESSION_COOKIE,
    ReplicaConfig,
    ReplicaServer,
    serve,
)
from child.replica.answer import reply_for, thoughts_for
from child.replica.api import PAGE_HEADER, accepts_gzip
from child.replica.tools import FunctionDeclaration
from child.replica.wire import encode_request
from tests.support.processes import free_port, stop_process_group, wait_for
from tests.support.replica import SESSION, PageClient, RemoteReplica, StartReplica, ThreadedReplica

REPO = Path(__file__).resolve().parents[2]
LOGIN_REDIRECT = "/login?continue=/prompts/new_chat"
JSON_PROTOBUF = "application/json+protobuf; charset=UTF-8"
DENIED = [None, [7, "The caller does not have permission"]]
EXHAUSTED = [None, [8, "Resource has been exhausted (e.g. check quota)."]]


def as_session(replica: ThreadedReplica, session: str = SESSION) -> httpx.Client:
    return httpx.Client(base_url=replica.url, cookies={SESSION_COOKIE: session}, timeout=5.0)


def frames_of(body: bytes) -> list[Any]:
    parsed = json.loads(body)
    assert isinstance(parsed, list) and len(parsed) == 1
    frames: list[Any] = parsed[0]
    return frames


def texts(frames: list[Any], thinking: bool = False) -> str:
    parts = [part for f in frames for part in f[0][0][0][0]]
    return "".join(p[1] for p in parts if isinstance(p[1], str) and (len(p) == 13 and p[12]) == thinking)


# ---- the page origin


@pytest.mark.parametrize("path", ["/prompts/new_chat", "/"])
@pytest.mark.parametrize("cookie", [None, "not-a-session"])
def test_pages_redirect_to_login_without_an_accepted_session(
    replica: ThreadedReplica, path: str, cookie: str | None
) -> None:
    cookies = {SESSION_COOKIE: cookie} if cookie else {}
    response = httpx.get(replica.url + path, cookies=cookies, follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == LOGIN_REDIRECT


def test_the_chat_page_has_the_2026_elements_and_none_of_2025(replica: ThreadedReplica) -> None:
    with as_session(replica) as client:
        page = client.get("/prompts/new_chat")
        assert client.get("/", follow_redirects=False).headers["location"] == "/prompts/new_chat"
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    for needle in (
        '<textarea class="textarea" aria-label="Enter a prompt" formcontrolname="promptText"',
        '<ms-run-button><button type="submit" class="ms-button-primary" disabled>',
        'data-test-clear="outside" aria-label="New chat"',
        'aria-label="View more actions"',
        "data-test-incognito-toggle",
        'data-test-id="model-name"',
        'data-test-id="temperatureSliderContainer"',
        'aria-label="Advanced settings"',
        "<ms-zero-state>",
    ):
        assert needle in page.text
    for gone in ("ms-prompt-input-wrapper", "ms-autosize-textarea", 'aria-label="Run"', "ms-slider"):
        assert gone not in page.text
    assert not re.search(r'class="[^"]*\brun-button\b', page.text)


@pytest.mark.parametrize("key", sorted(DRIFTS))
def test_each_drift_key_renames_its_element_only(start_replica: StartReplica, key: str) -> None:
    replica = start_replica(drift=frozenset({key}))
    with as_session(replica) as client:
        html = client.get("/prompts/new_chat").text
    for old, new in DRIFTS[key]:
        assert old not in html
        assert new in html
    others = [old for other, pairs in DRIFTS.items() if other != key for old, _ in pairs]
    assert all(old in html for old in others)


def test_every_page_load_gets_its_own_id_and_proof_secret(replica: ThreadedReplica) -> None:
    first, second = PageClient(replica), PageClient(replica)
    try:
        assert first.boot["pageId"] != second.boot["pageId"]
        assert first.boot["proofKey"] != second.boot["proofKey"]
        assert first.boot["apiUrl"] == replica.api_url and replica.api_url.startswith("https://localhost:")
        assert first.boot["defaultModel"] == "replica-flash"
    finally:
        first.close()
        second.close()


def test_login_form_issues_a_session_that_is_accepted_afterwards(replica: ThreadedReplica) -> None:
    with httpx.Client(base_url=replica.url, timeout=5.0) as client:
        form = client.get(LOGIN_REDIRECT)
        assert form.status_code == 200
        for needle in ('name="email"', 'name="password"', 'id="sign-in"', 'value="/prompts/new_chat"'):
            assert needle in form.text
        response = client.post(
            "/login", data={"email": "a@b.c", "password": "x", "continue": "/prompts/new_chat"}
        )
        assert response.status_code == 302
        assert response.headers["location"] == "/prompts/new_chat"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=")
        for attribute in ("HttpOnly", "Path=/", "SameSite=lax"):
            assert attribute.lower() in cookie.lower()
        assert client.get("/prompts/new_chat").status_code == 200


def test_login_never_continues_to_another_host(replica: ThreadedReplica) -> None:
    response = httpx.post(replica.url + "/login", data={"email": "a", "continue": "//evil.example/x"})
    assert response.headers["location"] == "/prompts/new_chat"


# ---- the answer endpoint


def test_the_endpoint_is_https_with_a_certificate_from_the_replica_ca(replica: ThreadedReplica) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.post(replica.api_url + LIST_MODELS_PATH, verify=ssl.create_default_context())
    # The same certificate is good for 127.0.0.1 (its IP address SAN).
    by_ip = replica.api_url.replace("localhost", "127.0.0.1")
    assert httpx.post(by_ip + LIST_MODELS_PATH, verify=replica.ssl_context()).status_code == 401


def test_list_models_needs_a_page_and_lists_the_default_not_first(
    replica: ThreadedReplica, page_client: PageClient
) -> None:
    refused = page_client.api.post(LIST_MODELS_PATH, content=b"[]")
    assert refused.status_code == 401
    assert refused.json() == [None, [16, "Request is missing required authentication credential."]]
    response = page_client.api.post(
        LIST_MODELS_PATH, content=b"[]", headers={PAGE_HEADER: page_client.boot["pageId"]}
    )
    assert response.status_code == 200 and response.headers["content-type"] == JSON_PROTOBUF
    entries = response.json()[0]
    assert [entry[0] for entry in entries] == [
        "models/replica-pro",
        "models/replica-flash",
        "models/replica-lite",
    ]
    assert entries[0][3] == "Replica Pro"
    # No temperature or top-p for replica-lite; replica-pro thinks.
    assert [(entry[9], entry[10], entry[15]) for entry in entries] == [
        (1.0, 0.95, True),
        (1.0, 0.95, False),
        (None, None, False),
    ]


def test_an_answer_streams_one_frame_per_chunk(start_replica: StartReplica) -> None:
    replica = start_replica(token_ms=25)
    client = PageClient(replica)
    request = client.request("first line\nsay hi to all", model="replica-flash", max_tokens=5)
    with client.stream(request) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == JSON_PROTOBUF
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-encoding" not in response.headers
        chunks = list(response.iter_raw())
    client.close()
    expected = reply_for("first line\nsay hi to all", "replica-flash", max_tokens=5)
    # "[[" + frame, then "," + frame for each token, then "]]": one chunk each.
    assert len(chunks) == len(expected.answer) + 1
    assert chunks[0].startswith(b"[[") and chunks[-1] == b"]]"
    assert all(chunk.startswith(b",") for chunk in chunks[1:-1])
    frames = [json.loads(chunk[2:] if i == 0 else chunk[1:]) for i, chunk in enumerate(chunks[:-1])]
    assert frames_of(b"".join(chunks)) == frames
    for index, (data, token) in enumerate(zip(frames, expected.answer, strict=True)):
        last = index == len(frames) - 1
        content = [[[None, token]], "model"]
        candidate = [content, 2] if last else [content]
        assert data == [
            [candidate],
            None,
            [expected.prompt_tokens, index + 1, expected.prompt_tokens + index + 1],
        ]
    run = replica.wait_run(0, "completed", reported=False)
    assert run["answer"] == "".join(expected.answer) == texts(frames)
    assert (run["finish"], run["usage"]) == (2, {"prompt": 6, "candidates": 5, "thoughts": 0, "total": 11})
    assert run["proof_ok"] is True and run["session"] == SESSION and run["run_id"] == request.nonce


def test_gzip_when_accepted_still_streams_frame_by_frame(
    replica: ThreadedReplica, page_client: PageClient
) -> None:
    request = page_client.request("gzip me please")
    with page_client.stream(request, gzip=True) as response:
        assert response.headers["content-encoding"] == "gzip"
        assert "Accept-Encoding" in response.headers["vary"]
        decoder = zlib.decompressobj(wbits=31)
        decoded = []
        for chunk in response.iter_raw():
            # Every chunk decodes at once to whole frames: the stream is flushed per frame.
            decoded.append(decoder.decompress(chunk))
    assert decoder.eof
    assert all(piece.endswith(b"]") for piece in decoded) and len(decoded) > 3
    assert texts(frames_of(b"".join(decoded))) == "Replica replica-flash answers: gzip me please"


def test_thinking_models_send_thoughts_then_a_signature_then_the_answer(
    replica: ThreadedReplica, page_client: PageClient
) -> None:
    response = page_client.post(page_client.request("why?", model="replica-pro", system="be brief"))
    frames = frames_of(response.content)
    parts = [f[0][0][0][0][0] for f in frames]
    kinds = ["thought" if len(p) == 13 else "signature" if len(p) == 15 else "text" for p in parts]
    first_text = kinds.index("text")
    assert set(kinds[: first_text - 1]) == {"thought"} and kinds[first_text - 1] == "signature"
    assert set(kinds[first_text:]) == {"text"}
    assert parts[first_text - 1][12] is True and isinstance(parts[first_text - 1][14], str)
    assert texts(frames, thinking=True) == thoughts_for("why?", "replica-pro")
    # The system instruction shows in the answer: it came through [8], not the prompt.
    assert texts(frames) == "Replica replica-pro answers: why? (system instruction: be brief)"
    usage = frames[-1][2]
    run = replica.wait_run(0, "completed", reported=False)
    assert usage == [
        3,
        8,
        11 + run["usage"]["thoughts"],
        None,
        None,
        None,
        None,
        None,
        None,
        run["usage"]["thoughts"],
    ]
    assert run["thoughts"] == thoughts_for("why?", "replica-pro") and run["system"] == "be brief"


def test_a_function_call_is_one_frame_of_typed_values(
    replica: ThreadedReplica, page_client: PageClient
) -> None:
    parameters = {"type": "object", "properties": {
        "query": {"type": "string"}, "limit": {"type": "integer", "minimum": 3}, "ratio": {"type": "number"},
        "exact": {"type": "boolean"}, "cursor": {"type": "null"},
        "filters": {"type": "object", "properties": {
            "lang": {"type": "string", "enum": ["en"]},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 4}, "minItems": 2},
        }}}}  # fmt: skip
    declared = (FunctionDeclaration("replica_lookup", "looks up", parameters),)
    response = page_client.post(page_client.request("make a function call", functions=declared))
    (only,) = frames_of(response.content)
    part = [None] * 10 + [
        [
            "replica_lookup",
            [
                [
                    ["query", [None, None, "make a function call"]],
                    ["limit", [None, 3]],
                    ["ratio", [None, 0.5]],
                    ["exact", [None, None, None, True]],
                    ["cursor", [0]],
                    ["filters", [None, None, None, None, [[
                        ["lang", [None, None, "en"]],
                        ["tags", [None, None, None, None, None, [[
                            [None, None, "make"], [None, None, "make"]]]]],
                    ]]]],
                ]
            ],
        ]
    ]  # fmt: skip
    assert only[0] == [[[[part], "model"], 1]]
    run = replica.wait_run(0, "completed", reported=False)
    assert run["function_call"]["name"] == "replica_lookup" and run["answer"] == ""
    assert only[2] == [run["usage"]["prompt"], run["usage"]["candidates"], run["usage"]["total"]]


@pytest.mark.parametrize(
    ("header", "gzip"),
    [("gzip, deflate, br, zstd", True), ("deflate, GZip;q=0.5", True), ("gzip;q=0", False),
     ("identity", False), ("*", True), ("", False), ("gzip;q=x", False)],
)  # fmt: skip
def test_accepts_gzip(header: str, gzip: bool) -> None:
    assert accepts_gzip(header) is gzip


def test_no_proof_no_answer(replica: ThreadedReplica, page_client: PageClient) -> None:
    bad = page_client.post(page_client.request("a"), proof="0" * 64)
    assert bad.status_code == 403 and bad.json() == DENIED
    assert bad.headers["content-type"] == JSON_PROTOBUF
    # A proof is good for one body, once.
    request = page_client.request("b")
    body = encode_request(request)
    headers = page_client.headers(body)
    assert page_client.api.post(GENERATE_PATH, content=body, headers=headers).status_code == 200
    assert page_client.api.post(GENERATE_PATH, content=body, headers=headers).status_code == 403
    other = encode_request(page_client.request("c"))
    assert page_client.api.post(GENERATE_PATH, content=other, headers=headers).status_code == 403
    no_page = {key: value for key, value in page_client.headers(other).items() if key != PAGE_HEADER}
    assert page_client.api.post(GENERATE_PATH, content=other, headers=no_page).status_code == 403
    runs = replica.runs()
    assert [(run["status"], run["proof_ok"]) for run in runs] == [
        ("denied", False),
        ("completed", True),
        ("denied", False),
        ("denied", False),
        ("denied", False),
    ]
    assert runs[-1]["session"] is None and runs[0]["answer"] == ""


def test_quota_is_per_session_and_model(start_replica: StartReplica) -> None:
    replica = start_replica(quota_after=2, sessions=frozenset({"one", "two"}))
    one, two = PageClient(replica, "one"), PageClient(replica, "two")
    try:
        assert one.post(one.request(model="replica-pro")).status_code == 200
        assert one.post(one.request(model="replica-pro")).status_code == 200
        refused = one.post(one.request(model="replica-pro"))
        assert refused.status_code == 429 and refused.json() == EXHAUSTED
        assert one.post(one.request(model="replica-flash")).status_code == 200
        assert two.post(two.request(model="replica-pro")).status_code == 200
        statuses = [run["status"] for run in replica.runs()]
        assert statuses == ["completed", "completed", "quota", "completed", "completed"]
        assert replica.http.post("/__replica/reset").status_code == 200
        assert replica.runs() == []
        assert one.post(one.request(model="replica-pro")).status_code == 200
    finally:
        one.close()
        two.close()


def test_permission_denied_models(start_replica: StartReplica) -> None:
    replica = start_replica(permission_denied=frozenset({"replica-lite"}))
    client = PageClient(replica)
    try:
        refused = client.post(client.request(model="replica-lite", temperature=None, top_p=None))
        assert refused.status_code == 403 and refused.json() == DENIED
        assert client.post(client.request(model="replica-flash")).status_code == 200
    finally:
        client.close()
    run = replica.runs()[0]
    assert (run["status"], run["proof_ok"], run["settings"]["temperature"]) == ("denied", True, None)


def test_bad_requests_and_unknown_models(page_client: PageClient) -> None:
    body = b'["models/replica-pro"]'
    invalid = page_client.api.post(GENERATE_PATH, content=body, headers=page_client.headers(body))
    assert invalid.status_code == 400 and invalid.json() == [
        None,
        [3, "Request contains an invalid argument."],
    ]
    unknown = page_client.post(page_client.request(model="gpt-4"))
    assert unknown.status_code == 404 and unknown.json()[1][0] == 5


def test_cors_preflight_and_headers_for_the_page_origin_only(
    replica: ThreadedReplica, page_client: PageClient
) -> None:
    preflight = {
        "Origin": replica.url,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-replica-page,x-replica-proof",
    }
    allowed = page_client.api.options(GENERATE_PATH, headers=preflight)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == replica.url
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert {"x-replica-page", "x-replica-proof", "content-type"} <= {
        name.strip() for name in allowed.headers["access-control-allow-headers"].split(",")
    }
    foreign = page_client.api.options(GENERATE_PATH, headers={**preflight, "Origin": "http://evil.example"})
    assert foreign.status_code == 403 and "access-control-allow-origin" not in foreign.headers
    answer = page_client.post(page_client.request())
    assert answer.headers["access-control-allow-origin"] == replica.url


def test_a_client_that_goes_away_mid_answer_leaves_a_stopped_run(start_replica: StartReplica) -> None:
    replica = start_replica(token_ms=50)
    client = PageClient(replica)
    request = client.request(" ".join(f"w{i}" for i in range(40)))
    with client.stream(request) as response:
        received = b""
        for chunk in response.iter_raw():
            received += chunk
            if received.count(b"model") >= 3:
                break
    client.close()
    run = replica.wait_run(0, "stopped", reported=False)
    assert run["finish"] is None
    full = "".join(reply_for(request.prompt, "replica-flash").answer)
    assert full.startswith(run["answer"]) and 0 < len(run["answer"]) < len(full)


def test_the_page_reports_what_it_rendered_once(replica: ThreadedReplica, page_client: PageClient) -> None:
    request = page_client.request("report me")
    assert page_client.post(request).status_code == 200
    with as_session(replica) as client:
        url = f"/api/runs/{request.nonce}/finished"
        assert client.post(url, json={"text": "shown"}).status_code == 200
        assert client.post(url, content=json.dumps({"text": "late beacon"})).status_code == 200
        assert client.post(url, json={"status": "x"}).status_code == 400
        assert client.post("/api/runs/nope/finished", json={"text": ""}).status_code == 404
    assert httpx.post(replica.url + url, json={"text": "x"}).status_code == 401
    run = replica.runs()[0]
    assert (run["text"], run["reported"]) == ("shown", True)


def test_info_says_where_the_answers_come_from(replica: ThreadedReplica) -> None:
    info = replica.http.get("/__replica/info").json()
    assert info == {"api_url": replica.api_url, "models": ["replica-pro", "replica-flash", "replica-lite"]}


async def test_replica_server_serves_in_the_callers_loop_and_stops() -> None:
    async with ReplicaServer(ReplicaConfig(sessions=frozenset({"s"}))) as server:
        assert server.port > 0 and server.api_port > 0 and server.api_port != server.port
        ca_file = server.ca_file
        assert ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
        async with httpx.AsyncClient(cookies={SESSION_COOKIE: "s"}) as client:
            assert (await client.get(server.chat_url)).status_code == 200
        context = ssl.create_default_context(cafile=str(ca_file))
        async with httpx.AsyncClient(verify=context) as client:
            assert (await client.post(server.api_url + LIST_MODELS_PATH)).status_code == 401
        urls = (server.url + "/__replica/runs", server.api_url + LIST_MODELS_PATH)
    assert not ca_file.exists()
    for url in urls:
        with pytest.raises(httpx.ConnectError):
            httpx.post(url, timeout=2.0, verify=False)


def test_command_line_serves_both_origins(tmp_path: Path) -> None:
    port, api_port = free_port(), free_port()
    ca_file = tmp_path / "ca.pem"
    argv = [sys.executable, "-m", "child.replica", "--port", str(port), "--api-port", str(api_port)]
    argv += ["--ca-file", str(ca_file), "--session", "cli-a", "cli-b", "--quota-after", "1", "--no-popups"]
    argv += ["--permission-denied", "replica-lite", "--drift", "prompt,zero_state", "--token-ms", "1"]
    with (tmp_path / "out.log").open("wb") as output:
        process = subprocess.Popen(
            argv, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:

        def answers() -> bool:
            assert process.poll() is None, (tmp_path / "out.log").read_text()
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"http://127.0.0.1:{port}/__replica/info", timeout=1.0).is_success
            return False

        wait_for(answers, 30, "the replica to listen")
        info = httpx.get(f"http://127.0.0.1:{port}/__replica/info").json()
        assert info["api_url"] == f"https://localhost:{api_port}"
        cli = RemoteReplica(f"http://127.0.0.1:{port}", info["api_url"], ca_file)
        client = PageClient(cli, "cli-b")
        try:
            assert (
                '"popups": false'
                in httpx.get(cli.url + "/prompts/new_chat", cookies={SESSION_COOKIE: "cli-b"}).text
            )
            assert client.post(client.request(model="replica-pro")).status_code == 200
            assert client.post(client.request(model="replica-pro")).status_code == 429
            assert client.post(client.request(model="replica-lite")).status_code == 403
        finally:
            client.close()
        page = httpx.get(cli.url + "/prompts/new_chat", cookies={SESSION_COOKIE: "cli-a"}).text
        assert "ms-empty-state" in page and "ms-zero-state" not in page and "Enter a prompt" not in page
    finally:
        stop_process_group(process, timeout=5)
    assert "replica: open http://127.0.0.1" in (tmp_path / "out.log").read_text()


def test_command_line_refuses_bad_settings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "child.replica", "--port", "1", "--default-model", "nope"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "default_model 'nope'" in result.stderr


async def test_serve_runs_until_cancelled() -> None:
    port = free_port()
    task = asyncio.create_task(serve(ReplicaConfig(), port=port))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        async with asyncio.timeout(10):
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/__replica/runs")).is_success:
                        break
                await asyncio.sleep(0.02)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with pytest.raises(httpx.ConnectError):
            await client.get("/__replica/runs")
