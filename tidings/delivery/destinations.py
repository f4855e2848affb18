"""Where a webhook may be sent: absolute http(s) URLs whose addresses are public.

By default a destination that resolves to loopback, private, link-local, multicast, reserved
or cloud-metadata addresses is refused, at registration and again at every delivery, and the
request goes to the address that was vetted (no window for DNS rebinding between the check and
the connection). ``TIDINGS_WEBHOOK_ALLOW_PRIVATE=true`` lifts this for local use and tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

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
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_public(address.ipv4_mapped)
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect: the vetted address, and the name for Host and TLS (SNI)."""

    url: str  # the URL to request (host replaced by the vetted address when vetting applies)
    host_header: str | None
    sni_hostname: str | None


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
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


async def vet(url: str, allow_private: bool) -> Target:
    """Check a destination and pick the address to connect to."""
    scheme, host, port = check_url(url)
    if allow_private:
        return Target(url, None, None)
    if host in METADATA_HOSTS:
        raise DestinationRefused(f"{host!r} is a cloud metadata service")
    addresses = await resolve(host, port)
    refused = [a for a in addresses if not is_public(a)]
    if refused or not addresses:
        shown = ", ".join(str(a) for a in refused) or "nothing"
        raise DestinationRefused(
            f"{host!r} resolves to {shown}, a private, loopback, link-local, multicast or "
            "reserved address (set TIDINGS_WEBHOOK_ALLOW_PRIVATE=true to allow it)"
        )
    chosen = addresses[0]
    parts = urlsplit(url)
    literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return Target(pinned, host_header, host if scheme == "https" else None)
