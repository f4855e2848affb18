"""Backplanes: how the nodes of a cluster learn that new positions were committed."""

from __future__ import annotations

from tidings.backplane.base import Announcement, Backplane
from tidings.backplane.memory import MemoryBackplane

__all__ = ["Announcement", "Backplane", "MemoryBackplane", "open_backplane_from_url"]


def open_backplane_from_url(url: str) -> Backplane:
    """The backplane a URL names; ``memory://`` is the single-process default."""
    if url in ("memory://", "memory", ""):
        return MemoryBackplane()
    scheme = url.split("://", 1)[0]
    if scheme in ("redis", "rediss", "nats", "postgresql", "postgres"):
        raise ValueError(
            f"TIDINGS_BACKPLANE: the {scheme} backplane is not available in this version"
        )
    raise ValueError(f"TIDINGS_BACKPLANE: unsupported backplane URL {url!r}; use memory://")
