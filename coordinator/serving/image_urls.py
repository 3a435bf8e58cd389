"""Web images, fetched by the coordinator before dispatch (`--fetch-image-urls`, off by default).

An `image_url` part whose URL is `http(s)://` is fetched here and replaced by a `data:`
URL, so the child attaches it like any other file. The coordinator is then a client of
whatever address a request names, so every fetch is fenced:

- only public addresses: the host is resolved first and *every* address it resolves to
  must be public (not private, loopback, link-local, multicast, reserved, unspecified,
  shared, nor an IPv4 address inside IPv6); a literal IP is checked the same way;
- no DNS rebinding: the connection goes to the address that was checked (the URL's host
  is replaced by it; `Host` and, over TLS, SNI and certificate checks keep the name), so
  a second lookup that answers differently is never made;
- redirects are followed by hand, at most `MAX_REDIRECTS`, each hop checked as the first;
- no proxy from the environment (a proxy would connect for us, unchecked);
- a size limit per image (the attachment limit) and for all of a request's images (the
  body cap), counted as the bodies stream; one timeout for the whole fetch, redirects
  included; only image types the page takes;
- no connection is reused (one made for another name at the same address would carry
  this request under that name's TLS session).

Any failure is a 400 naming the part (`messages[i].content[j].image_url.url`); the log
gets the host, never the URL's path or query.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urljoin, urlsplit

import httpx
import structlog

from coordinator.protocol.errors import InvalidRequest
from coordinator.protocol.request import ATTACHMENT_TYPES, MAX_ATTACHMENT_BYTES

log = structlog.get_logger("coordinator.serving.image_urls")

MAX_REDIRECTS: Final = 3
IMAGE_TYPES: Final = frozenset(mime for mime in ATTACHMENT_TYPES if mime.startswith("image/"))
CODE: Final = "invalid_image_url"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


def non_public(address: IPAddress) -> str | None:
    """Why `address` may not be fetched from, or None when it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 address carried in IPv6 reaches that IPv4 host: judged as it.
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is not None:
            return non_public(embedded)
    for reason, flag in (
        # The most telling name first: 169.254.169.254 is "private" too, but link-local says more.
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return reason
    # What is left and still not global: shared address space (100.64/10) and the like.
    return None if address.is_global else "not public"


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """Every address `host` resolves to (A and AAAA)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class Target:
    """One hop: the URL as asked, and the checked address the connection goes to."""

    url: httpx.URL
    address: IPAddress


class ImageFetcher:
    """Replaces the web image URLs of a chat body with data: URLs, or refuses the request."""

    def __init__(
        self,
        *,
        max_bytes: int,
        timeout: float,
        resolver: Resolver = system_resolver,
        allowed: Callable[[IPAddress], str | None] = non_public,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.max_bytes = min(max_bytes, MAX_ATTACHMENT_BYTES)
        self.max_total = max_bytes
        self.timeout = timeout
        self._resolve = resolver
        # Why an address is refused (None: allowed); a test may widen it to reach 127.0.0.1.
        self._refused = allowed
        self._verify = verify  # the system's CAs; a test's own CA

    async def inline(self, body: bytes) -> bytes:
        """`body` with each web image fetched into a data: URL; unchanged if it has none
        (or is not a chat body: parsing it later says what is wrong)."""
        if b"http" not in body:
            return body
        try:
            data = json.loads(body)
        except ValueError:
            return body
        parts = list(_web_images(data))
        if not parts:
            return body
        client = httpx.AsyncClient(
            trust_env=False,
            verify=self._verify,
            follow_redirects=False,
            timeout=self.timeout,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        budget = _Budget(self.max_total)
        try:
            # All at once; the first refusal cancels the others.
            async with client, asyncio.TaskGroup() as group:
                for part, param in parts:
                    group.create_task(self._fetch_part(client, part, param, budget))
        except BaseExceptionGroup as failed:
            refusals = [exc for exc in failed.exceptions if isinstance(exc, InvalidRequest)]
            if refusals:
                raise refusals[0] from None
            raise
        return json.dumps(data, ensure_ascii=False).encode()

    async def _fetch_part(
        self, client: httpx.AsyncClient, part: dict[str, Any], param: str, budget: _Budget
    ) -> None:
        image = part["image_url"]
        url = image["url"] if isinstance(image, dict) else image
        try:
            async with asyncio.timeout(self.timeout):
                mime, data = await self._fetch(client, url, budget)
        except _Refused as exc:
            raise InvalidRequest(f"{param} was not fetched: {exc}.", param=param, code=CODE) from None
        except TimeoutError:
            raise InvalidRequest(
                f"{param} was not fetched within {self.timeout:g}s.", param=param, code=CODE
            ) from None
        except httpx.HTTPError as exc:
            raise InvalidRequest(
                f"{param} was not fetched: {type(exc).__name__}.", param=param, code=CODE
            ) from None
        encoded = f"data:{mime};base64,{base64.b64encode(data).decode()}"
        if isinstance(image, dict):
            image["url"] = encoded
        else:
            part["image_url"] = {"url": encoded}
        log.info("image_url_fetched", host=urlsplit(url).hostname, mime_type=mime, bytes=len(data))

    async def _fetch(self, client: httpx.AsyncClient, url: str, budget: _Budget) -> tuple[str, bytes]:
        for _ in range(MAX_REDIRECTS + 1):
            target = await self._target(url)
            request = client.build_request("GET", _by_address(target), headers=_headers(target.url))
            if target.url.scheme == "https":
                # TLS to the name, over the checked address: SNI and the certificate check.
                request.extensions["sni_hostname"] = target.url.host
            response = await client.send(request, stream=True)
            try:
                if response.is_redirect:
                    location = response.headers.get("location", "")
                    url = urljoin(str(target.url), location)
                    continue
                if response.status_code != 200:
                    raise _Refused(f"the server answered {response.status_code}")
                return self._mime(response), await self._read(response, budget)
            finally:
                await response.aclose()
        raise _Refused(f"more than {MAX_REDIRECTS} redirects")

    async def _target(self, url: str) -> Target:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            raise _Refused("it is not a valid URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise _Refused("only http and https URLs are fetched")
        if parsed.userinfo:
            raise _Refused("a URL with credentials is not fetched")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            literal: IPAddress | None = ipaddress.ip_address(parsed.host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        else:
            try:
                resolved = await self._resolve(parsed.host, port)
            except (OSError, UnicodeError):  # UnicodeError: a name IDNA cannot encode
                raise _Refused(f"{parsed.host} does not resolve") from None
            # A scoped IPv6 address ("fe80::1%eth0") is link-local whatever its scope.
            addresses = [ipaddress.ip_address(address.split("%")[0]) for address in resolved]
        if not addresses:
            raise _Refused(f"{parsed.host} does not resolve")
        for address in addresses:
            reason = self._refused(address)
            if reason is not None:
                raise _Refused(f"{parsed.host} is a {reason} address; only public addresses are fetched")
        return Target(parsed, addresses[0])

    def _mime(self, response: httpx.Response) -> str:
        mime = str(response.headers.get("content-type", "")).split(";")[0].strip().lower()
        if mime not in IMAGE_TYPES:
            takes = ", ".join(sorted(IMAGE_TYPES))
            raise _Refused(f"it is {mime or 'of no type'}, not an image the page takes ({takes})")
        return mime

    async def _read(self, response: httpx.Response, budget: _Budget) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise _Refused(f"it is over {self.max_bytes} bytes")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            budget.take(len(chunk))
            if len(body) > self.max_bytes:
                raise _Refused(f"it is over {self.max_bytes} bytes")
        if not body:
            raise _Refused("it is empty")
        return bytes(body)


class _Refused(Exception):
    """A fetch refused; the message says why, for the client."""


class _Budget:
    """The bytes all of one request's images may take together (their fetches share it)."""

    def __init__(self, total: int) -> None:
        self.left = total
        self.total = total

    def take(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise _Refused(f"the request's web images are over {self.total} bytes in all")


def _web_images(data: Any) -> list[tuple[dict[str, Any], str]]:
    """The image_url parts of a chat body whose URL is http(s), with their param path."""
    found: list[tuple[dict[str, Any], str]] = []
    messages = data.get("messages") if isinstance(data, dict) else None
    for index, message in enumerate(messages if isinstance(messages, list) else []):
        content = message.get("content") if isinstance(message, dict) else None
        for part_index, part in enumerate(content if isinstance(content, list) else []):
            if not (isinstance(part, dict) and part.get("type") == "image_url"):
                continue
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str) and url.startswith(("http://", "https://")):
                found.append((part, f"messages[{index}].content[{part_index}].image_url.url"))
    return found


def _by_address(target: Target) -> httpx.URL:
    """The URL with its host replaced by the checked address."""
    return target.url.copy_with(host=str(target.address))


def _headers(url: httpx.URL) -> dict[str, str]:
    default = 443 if url.scheme == "https" else 80
    host = url.host if ":" not in url.host else f"[{url.host}]"
    return {"Host": host if url.port in (None, default) else f"{host}:{url.port}", "Accept": "image/*"}
