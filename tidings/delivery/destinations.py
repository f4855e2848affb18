"""Where a webhook may be sent: absolute http(s) URLs whose addresses are public.

By default a destination that resolves to loopback, private, link-local, multicast, reserved
or cloud-metadata addresses (also inside IPv4-mapped, NAT64 and 6to4 IPv6 addresses) is
refused, at registration and again at every delivery, and the request goes only to the
addresses that were vetted, tried in turn (no window for DNS rebinding between the check and the
connection, whatever the setting). ``TIDINGS_WEBHOOK_ALLOW_PRIVATE=true`` lets private and
loopback addresses through for local use and tests, never cloud metadata services. The address
rules are those of ``tidings.netguard``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from tidings.netguard import ALLOW_PRIVATE_ENV, address_problem

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}


class DestinationRefused(ValueError):
    """The URL is not a destination Tidings will send to; the message says why."""


def check_url(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an absolute http(s) URL; refuses anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise DestinationRefused(f"not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise DestinationRefused("the URL must start with http:// or https://")
    if not parts.hostname:
        raise DestinationRefused("the URL has no host")
    if parts.username or parts.password:
        raise DestinationRefused("credentials in the URL are not allowed; use `headers`")
    return parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def is_public(address: IPAddress) -> bool:
    """False for every address a webhook must not reach by default."""
    return address_problem(address, allow_private=False) is None


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect: every vetted address, and the name for Host and TLS (SNI)."""

    urls: tuple[str, ...]  # the URL with its host replaced by each vetted address, in order
    host_header: str | None  # the URL's host[:port] when pinned; None when it names an address
    sni_hostname: str | None  # the name for TLS when an https:// URL is pinned

    @property
    def url(self) -> str:
        """The first address to try."""
        return self.urls[0]


async def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise DestinationRefused(f"cannot resolve {host!r}: {error.strerror}") from None
    found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    return list(dict.fromkeys(found))  # in the resolver's order of preference, once each


async def vet(url: str, allow_private: bool) -> Target:
    """Check a destination and pin the addresses to connect to, in every mode.

    Every address the name resolves to must be allowed (the connection may pick any), and the
    request goes only to those addresses: a second lookup (DNS rebinding) never decides where
    it goes. Cloud metadata services stay refused even when private destinations are allowed
    (the rule of ``tidings.netguard``): nothing legitimate receives webhooks there.
    """
    scheme, host, port = check_url(url)
    if host.rstrip(".") in METADATA_HOSTS:
        raise DestinationRefused(f"{host!r} is a cloud metadata service")
    addresses = await resolve(host, port)
    if not addresses:
        raise DestinationRefused(f"{host!r} resolves to nothing")
    for address in addresses:
        problem = address_problem(address, allow_private)
        if problem:
            hint = "" if "metadata" in problem else f" (set {ALLOW_PRIVATE_ENV}=true to allow it)"
            raise DestinationRefused(f"{host!r} may not receive webhooks: {problem}{hint}")
    if _is_address(host):
        return Target((url,), None, None)
    parts = urlsplit(url)
    pinned = []
    for address in addresses:
        literal = f"[{address}]" if address.version == 6 else str(address)
        netloc = f"{literal}:{parts.port}" if parts.port else literal
        pinned.append(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return Target(tuple(pinned), host_header, host if scheme == "https" else None)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
