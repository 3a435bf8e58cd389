"""HTTP/1.1 byte by byte on a raw socket: what a test needs to send what no client library
would (pipelining, half-closes, slow heads, bodies never sent) and to read what comes back."""

from __future__ import annotations

import json
import socket

from tests.support.coordinator import Coordinator


def connect(run: Coordinator, timeout: float = 10) -> socket.socket:
    return socket.create_connection(("127.0.0.1", run.port), timeout=timeout)


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def read_answer(sock: socket.socket, buffer: bytes = b"") -> tuple[bytes, dict[str, str], bytes, bytes]:
    """One Content-Length answer: (status line, headers, body, bytes read past it)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-head: {buffer!r}"
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {k.decode().lower(): v.decode().strip() for k, _, v in (line.partition(b":") for line in lines)}
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    return status, headers, rest[:length], rest[length:]


def post(body: bytes, extra: str = "", version: str = "1.1", path: str = "/v1/chat/completions") -> bytes:
    return (
        f"POST {path} HTTP/{version}\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def assert_openai_error(body: bytes, code: str) -> None:
    error = json.loads(body)["error"]
    assert error["code"] == code
    assert error["message"]
