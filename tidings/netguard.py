"""Vetting outbound URLs: Tidings requests a URL that someone else chose (a webhook endpoint, a
SmartThings confirmation URL) only when it points at the public internet.

Without this, whoever can register a URL can make the server request its own loopback services,
the private network behind it, or a cloud metadata endpoint that hands out credentials.
``TIDINGS_WEBHOOK_ALLOW_PRIVATE=true`` lifts the private-network rule for self-hosted setups
whose receivers live on the LAN; the cloud metadata addresses stay refused whatever the setting.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
"""``(host, port) -> addresses as text``; ``socket.getaddrinfo`` unless a test passes its own."""

ALLOW_PRIVATE_ENV = "TIDINGS_WEBHOOK_ALLOW_PRIVATE"

# Instance metadata services of the large clouds. Nothing legitimate receives webhooks there.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.169.253",  # AWS DNS / time
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (older)
        "fd00:ec2::254",  # AWS over IPv6
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeURL(ValueError):
    """The URL may not be requested; the message says why."""


def _embedded_v4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64 or 6to4), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def address_problem(address: IPAddress, allow_private: bool) -> str | None:
    """Why ``address`` may not be requested, or None when it may."""
    inner = _embedded_v4(address)
    if inner is not None:
        problem = address_problem(inner, allow_private)
        return f"{problem} (as {address})" if problem else None
    if address in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata address"
    if allow_private:
        return None
    if address.is_loopback:
        return f"{address} is a loopback address"
    if address.is_link_local:
        return f"{address} is a link-local address"
    if address.is_multicast:
        return f"{address} is a multicast address"
    if address.is_unspecified:
        return f"{address} is the unspecified address"
    if address.is_private:
        return f"{address} is a private address"
    if address.is_reserved or not address.is_global:
        return f"{address} is a reserved address"
    return None


def _resolve(host: str, port: int) -> list[str]:
    infos: list[Any] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def vet_url(url: str, allow_private: bool, *, resolve: Resolver = _resolve) -> list[IPAddress]:
    """The addresses ``url`` resolves to, when every one of them may be requested.

    Raises ``UnsafeURL`` for a scheme other than http(s), a URL without a host, a host that
    does not resolve, or any refused address: one bad address among good ones is enough, since
    the connection may pick it. The caller should connect to one of the returned addresses so
    that a second lookup cannot answer differently.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeURL(f"{url!r} is not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL(
            f"only http and https URLs may be requested, not {parts.scheme or 'none'!r}"
        )
    host = parts.hostname
    if not host:
        raise UnsafeURL(f"{url!r} has no host")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            found = resolve(host, port)
        except (OSError, UnicodeError) as error:
            raise UnsafeURL(f"the host {host!r} does not resolve: {error}") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(a.split("%", 1)[0]) for a in found))
        if not addresses:
            raise UnsafeURL(f"the host {host!r} does not resolve")
    for address in addresses:
        problem = address_problem(address, allow_private)
        if problem:
            always = "cloud metadata" in problem
            hint = "" if allow_private or always else f" (set {ALLOW_PRIVATE_ENV}=true to allow it)"
            raise UnsafeURL(f"{host!r} may not be requested: {problem}{hint}")
    return addresses


def pin_url(url: str, address: IPAddress) -> tuple[str, str]:
    """``url`` with its host replaced by the vetted ``address``, and the Host header to send,
    so that the connection goes where the vetting looked (no second DNS answer)."""
    parts = urlsplit(url)
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), host_header


def allow_private_from_env(environ: dict[str, str] | None = None) -> bool:
    """``TIDINGS_WEBHOOK_ALLOW_PRIVATE`` read the way pydantic reads a boolean."""
    value = (environ if environ is not None else dict(os.environ)).get(ALLOW_PRIVATE_ENV, "")
    return value.strip().lower() in ("1", "true", "yes", "on", "t", "y")
