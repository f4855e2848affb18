"""Putting write groups that were in flight together back in position order, without I/O.

The writer keeps more than one group in flight: the next one waits on the log lock inside
PostgreSQL while the previous one commits. The database hands out positions in commit order,
but the answers come back on different connections, and the event loop may read the later one
first; a group sent first may even take the lock second. Callers, the commit listeners and the
head must still hear of groups in position order.

A finished group is handed on once nothing still in flight can hold positions below it: either
its first position follows the last one handed on (nothing in between is missing), or every
group that was in flight when it finished has finished too (a group sent after this one's
answer arrived drew its positions after this one committed). Among the groups that are ready,
the lowest positions go first. A group that stored nothing (duplicates only, refused, failed)
holds no positions and is handed on at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Landed(Generic[T]):
    first: int
    last: int
    payload: T
    blockers: set[int] = field(default_factory=set)  # in flight when this one finished


class CommitOrder(Generic[T]):
    """Tokens for groups in flight; ``finish`` returns what may be handed on, in order."""

    def __init__(self, last: int | None = None) -> None:
        self._next = 0  # the next token
        self._flying: set[int] = set()  # launched, not finished
        self._landed: list[_Landed[T]] = []  # finished, waiting for a group below them
        self._last = last  # the last position handed on (None: not known)

    def launch(self) -> int:
        """A token for a group about to be sent."""
        token = self._next
        self._next += 1
        self._flying.add(token)
        return token

    @property
    def in_flight(self) -> int:
        return len(self._flying)

    @property
    def waiting(self) -> int:
        """Finished groups held back for a group below them."""
        return len(self._landed)

    def finish(self, token: int, positions: tuple[int, int] | None, payload: T) -> list[T]:
        """The group ``token`` finished with positions ``(first, last)`` (None: it holds none).

        Returns the payloads to hand on now, in position order: this one's, and those it
        was holding back."""
        self._flying.discard(token)
        ready: list[T] = []
        if positions is None:
            ready.append(payload)
        else:
            first, last = positions
            self._landed.append(_Landed(first, last, payload, set(self._flying)))
        while self._landed:
            lowest = min(self._landed, key=lambda landed: landed.first)
            follows = self._last is not None and lowest.first == self._last + 1
            if not follows and lowest.blockers & self._flying:
                break
            self._landed.remove(lowest)
            self._last = lowest.last if self._last is None else max(self._last, lowest.last)
            ready.append(lowest.payload)
        return ready
