"""The capture proxy's way out: straight to the site, or through the account's own proxy.

`open_upstream` gives a stream to `host:port` (TLS on top when asked), dialled directly or
through an HTTP proxy (CONNECT), an HTTPS proxy (TLS to the proxy, then CONNECT) or a
SOCKS5 proxy (RFC 1928, user name and password by RFC 1929, names resolved by the proxy),
so that the site sees the account's address and no other. Every tunnel is a CONNECT,
plain HTTP included: one path, and no absolute-form request to rewrite. Each step is
bounded by the caller's deadline; a refusal is an `UpstreamError` (an OSError) that never
quotes the proxy's credentials.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import ssl
import struct

from coordinator.protocol.upstream_proxy import ProxyURL

MAX_REPLY_HEAD = 64 * 1024
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]

_SOCKS_VERSION = 5
_NO_AUTH = 0x00
_USER_PASSWORD = 0x02
_NO_ACCEPTABLE = 0xFF
_SOCKS_REPLIES = {
    1: "general failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}


class UpstreamError(OSError):
    """The account's proxy would not open the tunnel; the message says why, without secrets."""


async def open_upstream(
    host: str,
    port: int,
    proxy: ProxyURL | None,
    *,
    tls: ssl.SSLContext | None = None,
    proxy_tls: ssl.SSLContext | None = None,
    timeout: float = 30.0,
) -> Streams:
    """A stream to `host:port`, through `proxy` if there is one, with TLS from `tls` on top.

    `proxy_tls` is the context for an https:// proxy itself (default: the system's CAs).
    """
    async with asyncio.timeout(timeout):
        if proxy is None:
            return await asyncio.open_connection(host, port, ssl=tls, server_hostname=host if tls else None)
        if proxy.scheme == "https":
            context = proxy_tls or ssl.create_default_context()
            reader, writer = await asyncio.open_connection(
                proxy.host, proxy.port, ssl=context, server_hostname=proxy.host, limit=MAX_REPLY_HEAD
            )
        else:
            reader, writer = await asyncio.open_connection(proxy.host, proxy.port, limit=MAX_REPLY_HEAD)
        try:
            if proxy.is_socks:
                await _socks5(reader, writer, host, port, proxy)
            else:
                await _connect(reader, writer, host, port, proxy)
            if tls is not None:
                await writer.start_tls(tls, server_hostname=host)
        except BaseException:
            writer.close()
            raise
        return reader, writer


async def _connect(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int, proxy: ProxyURL
) -> None:
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if proxy.username is not None:
        token = base64.b64encode(f"{proxy.username}:{proxy.password or ''}".encode()).decode()
        lines.append(f"Proxy-Authorization: Basic {token}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise UpstreamError(f"the proxy {proxy.masked()} answered CONNECT with an oversized head") from None
    except asyncio.IncompleteReadError:
        raise UpstreamError(f"the proxy {proxy.masked()} closed the connection on CONNECT") from None
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    status = parts[1] if len(parts) > 1 else ""
    if not status.startswith("2"):
        what = "refused the credentials" if status == "407" else f"answered {status or 'nothing'}"
        raise UpstreamError(f"the proxy {proxy.masked()} {what} to CONNECT {authority}")


async def _socks5(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int, proxy: ProxyURL
) -> None:
    methods = bytes([_NO_AUTH, _USER_PASSWORD]) if proxy.username is not None else bytes([_NO_AUTH])
    writer.write(bytes([_SOCKS_VERSION, len(methods)]) + methods)
    await writer.drain()
    version, method = await _read(reader, 2, proxy)
    if version != _SOCKS_VERSION:
        raise UpstreamError(f"the proxy {proxy.masked()} does not speak SOCKS5")
    if method == _USER_PASSWORD and proxy.username is not None:
        user, password = proxy.username.encode(), (proxy.password or "").encode()
        writer.write(bytes([1, len(user)]) + user + bytes([len(password)]) + password)
        await writer.drain()
        _, status = await _read(reader, 2, proxy)
        if status != 0:
            raise UpstreamError(f"the proxy {proxy.masked()} refused the credentials")
    elif method != _NO_AUTH:
        needs = "credentials" if method in (_NO_ACCEPTABLE, _USER_PASSWORD) else f"method {method}"
        raise UpstreamError(f"the proxy {proxy.masked()} wants {needs} it was not given")
    writer.write(bytes([_SOCKS_VERSION, 1, 0]) + _address(host) + struct.pack("!H", port))
    await writer.drain()
    version, reply, _, kind = await _read(reader, 4, proxy)
    if version != _SOCKS_VERSION or reply != 0:
        why = _SOCKS_REPLIES.get(reply, f"reply {reply}")
        raise UpstreamError(f"the proxy {proxy.masked()} could not connect to {host}:{port}: {why}")
    # The address the proxy bound: read and ignored.
    if kind == 1:
        await _read(reader, 4 + 2, proxy)
    elif kind == 4:
        await _read(reader, 16 + 2, proxy)
    elif kind == 3:
        (length,) = await _read(reader, 1, proxy)
        await _read(reader, length + 2, proxy)
    else:
        raise UpstreamError(f"the proxy {proxy.masked()} answered an unknown address type {kind}")


def _address(host: str) -> bytes:
    """The SOCKS5 address of `host`: an IP as such, a name for the proxy to resolve."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        name = host.encode("idna")
        if not 0 < len(name) < 256:
            raise UpstreamError(f"the host name {host[:64]!r} is too long for SOCKS5") from None
        return bytes([3, len(name)]) + name
    return (bytes([1]) if ip.version == 4 else bytes([4])) + ip.packed


async def _read(reader: asyncio.StreamReader, size: int, proxy: ProxyURL) -> bytes:
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise UpstreamError(f"the proxy {proxy.masked()} closed the connection mid-handshake") from None
