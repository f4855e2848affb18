"""Gap detection for backplane announcements ("the store is the truth; the backplane is a hint").

An announcement says positions (first, last] are committed. The tracker knows the last position
routed and says what to read from the store when an announcement does not start there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with one announcement."""

    skip: bool  # nothing new: everything announced was routed already
    read_from: int | None  # read (read_from, read_to] from the store before routing
    read_to: int | None
    use_carried_after: int  # carried events with seq > this are routed as they are


class GapTracker:
    def __init__(self, routed_through: int) -> None:
        self.routed_through = routed_through  # the last position every subscriber was offered

    def plan(self, first: int, last: int, carried: bool) -> Plan:
        """Decide how to route an announcement of (first, last]."""
        if last <= self.routed_through:
            return Plan(True, None, None, last)
        if carried and first <= self.routed_through:
            return Plan(False, None, None, self.routed_through)
        # A gap before the announcement, or events that were not carried: read from the store.
        read_to = first if carried else last
        return Plan(False, self.routed_through, read_to, read_to if carried else last)

    def advance(self, position: int) -> None:
        if position > self.routed_through:
            self.routed_through = position
