"""Leases: work that must happen on one node at a time (an endpoint's dispatch, the MQTT
bridge, the PG NOTIFY listener, retention) is owned through a row with a holder and an expiry.

The holder renews its lease well before it expires; another node takes it over only after it
has expired. Each new holding gets a higher ``generation``, so a holder that was paused past
its expiry can tell (``renew`` answers False) and stop before it does the work twice.
Times are passed in by the caller, so the rules can be tested without a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Lease:
    name: str  # what is owned, e.g. ``retention`` or ``webhook:<id>``
    tenant: str  # whose work it is (``default`` for node-wide work)
    holder: str  # the node that holds it (``TIDINGS_NODE``)
    expires_at_us: int
    generation: int  # grows by one with every new holding (a fencing token)

    def held_by(self, holder: str, now_us: int) -> bool:
        return self.holder == holder and self.expires_at_us > now_us


class Leases(Protocol):
    async def acquire(
        self, name: str, holder: str, now_us: int, ttl_us: int, tenant: str = "default"
    ) -> Lease | None:
        """Hold ``name`` until ``now_us + ttl_us`` when it is free, expired or already ours
        (then it is renewed); None while another holder's lease is live."""

    async def renew(self, name: str, holder: str, now_us: int, ttl_us: int) -> Lease | None:
        """Extend our live lease; None when it is not ours any more (expired or taken over):
        the holder must stop the work it owned."""

    async def release(self, name: str, holder: str) -> bool:
        """Give up our lease so another node may take it at once; False when it was not ours."""

    async def get(self, name: str) -> Lease | None:
        """The lease as stored (possibly expired), None when nobody ever held it."""


def check_ttl(ttl_us: int) -> None:
    """Every implementation refuses a lease that would be expired when granted."""
    if ttl_us <= 0:
        raise ValueError("a lease needs a positive time to live")
