"""Which browser origins may use the server: ``TIDINGS_CORS_ORIGINS`` and its own origin.

A WebSocket upgrade is not covered by CORS: a page on any site can open one to any server
the browser can reach, with the browser's cookies and network position. The ``Origin``
header of an upgrade is therefore checked here; clients that are not browsers send none.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit


def parse_origins(value: str | None) -> tuple[str, ...]:
    """``https://app.example.com, http://localhost:3000`` as normalised origins."""
    if not value:
        return ()
    found = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        if item == "*":
            found.append("*")
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ValueError(
                f"TIDINGS_CORS_ORIGINS: {item!r} is not an origin such as https://app.example.com"
            )
        found.append(f"{parts.scheme}://{parts.netloc}".lower())
    return tuple(found)


class OriginPolicy:
    """Decides whether a WebSocket upgrade's ``Origin`` may connect."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(o.lower() for o in allowed)  # from TIDINGS_CORS_ORIGINS
        self.any = "*" in self.allowed

    def permits(self, origin: str | None, host: str | None, secure: bool = False) -> bool:
        """No ``Origin`` (not a browser), the server's own origin, or an allowed one."""
        if origin is None or self.any:
            return True
        origin = origin.strip().lower()
        if origin in self.allowed:
            return True
        if host is None or origin == "null":
            return False
        parts = urlsplit(origin)
        # The page was served by this server: the origin's host and port are the Host header.
        return parts.netloc == host.strip().lower() and parts.scheme in ("http", "https")
