"""File parts on the replica's wire and what its model says of them, without a browser."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets

import pytest

from child.replica.answer import reply_for
from child.replica.uploads import FilePartError, InlineFile, describe, read_file_part
from child.replica.wire import GenerateRequest, Turn, WireError, encode_request, parse_request
from tests.support.replica import PageClient, ThreadedReplica

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))


def test_a_file_part_is_index_2_of_a_part_and_decodes_exactly() -> None:
    file = InlineFile("image/png", PNG, "a.png")
    assert file.to_part()[:2] == [None, None]
    assert read_file_part(file.to_part()[2]) == file
    assert read_file_part(["application/pdf", "JVBERg=="]) == InlineFile("application/pdf", b"%PDF")


@pytest.mark.parametrize(
    ("blob", "said"),
    [
        (["application/zip", "AA==", "x.zip"], "type the page does not take"),
        (["image/png", "not base64!", "a.png"], "not base64"),
        (["image/png"], "is not [mime_type"),
        ("image/png", "is not [mime_type"),
        (["image/png", "AA==", 3], "is not [mime_type"),
    ],
)
def test_a_file_part_the_page_never_sends_is_refused(blob: object, said: str) -> None:
    with pytest.raises(FilePartError, match=said.replace("[", r"\[")):
        read_file_part(blob)


def test_the_request_carries_files_before_the_text_of_their_turn() -> None:
    turn = Turn("user", "look", (InlineFile("image/png", PNG, "a.png"),))
    request = GenerateRequest(
        "replica-flash", (turn,), "", (), None, None, None, secrets.token_hex(16), False
    )
    body = json.loads(encode_request(request))
    assert body[1][0][0][0] == [None, None, ["image/png", _b64(PNG), "a.png"]]
    assert body[1][0][0][1] == [None, "look"]
    parsed = parse_request(json.dumps(body).encode())
    assert parsed.prompt == "look" and parsed.files == (InlineFile("image/png", PNG, "a.png"),)
    body[1][0][0][0][2][0] = "application/x-msdownload"
    with pytest.raises(WireError, match=r"\[1\]\[0\]\[0\]\[0\]\[2\] has a type"):
        parse_request(json.dumps(body).encode())


def test_the_model_names_each_file_with_its_size_and_hash() -> None:
    files = (InlineFile("image/png", PNG, "a.png"), InlineFile("text/plain", b"hi", "b.txt"))
    digest = hashlib.sha256(PNG).hexdigest()[:12]
    said = describe(files)
    assert said == (
        f"Received 2 files: a.png (image/png, {len(PNG)} bytes, sha256 {digest}); "
        f"b.txt (text/plain, 2 bytes, sha256 {hashlib.sha256(b'hi').hexdigest()[:12]})."
    )
    answer = "".join(reply_for("what is it", "replica-flash", files=files).answer)
    assert answer == said + "\n\nReplica replica-flash answers: what is it"


def test_the_endpoint_records_what_arrived_never_the_bytes(
    page_client: PageClient, replica: ThreadedReplica
) -> None:
    turn = Turn("user", "what is it", (InlineFile("image/png", PNG, "a.png"),))
    request = page_client.request(turns=(turn,))
    response = page_client.post(request)
    assert response.status_code == 200
    run = replica.runs()[-1]
    digest = hashlib.sha256(PNG).hexdigest()
    assert f"sha256 {digest[:12]}" in run["answer"]
    assert run["files"] == [{"name": "a.png", "mime_type": "image/png", "bytes": len(PNG), "sha256": digest}]
    assert _b64(PNG) not in json.dumps(run)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
