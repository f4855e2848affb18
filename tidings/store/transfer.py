"""Copying a backend's data to another backend (``tidings migrate-store``).

Rows travel as they are stored: events keep their ids, positions, times and deduplication
keys; deliveries keep their ids, states and attempt logs; dead letters keep their ids and
positions. Imports skip what the target already has, so an interrupted copy is resumed by
running it again. Endpoints and sink cursors travel through their own protocols.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from tidings.envelope import Event
from tidings.store.dead_letters import DeadLetter
from tidings.store.deliveries import Attempt, Delivery


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event: Event
    dedupe_key: str | None  # the idempotency key as stored (None: never a duplicate)


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    delivery: Delivery
    attempts: list[Attempt]


class Transfer(Protocol):
    async def is_empty(self) -> bool:
        """Whether the backend holds no event, endpoint, delivery or dead letter."""

    async def export_events(self, after: int, limit: int) -> list[StoredEvent]:
        """Events of every tenant with ``seq > after``, in seq order."""

    async def import_events(self, rows: Sequence[StoredEvent]) -> None:
        """Store events with their own positions and stamps (in seq order, above every
        position the target has given); later appends get higher positions and stamps."""

    async def export_purges(self) -> dict[str, int]:
        """How far retention has deleted, per tenant."""

    async def import_purges(self, purged: dict[str, int]) -> None: ...

    async def export_deliveries(self, after_id: str, limit: int) -> list[StoredDelivery]:
        """Deliveries of every tenant with ``id > after_id``, by id, with their attempts."""

    async def import_deliveries(self, rows: Sequence[StoredDelivery]) -> None:
        """Store deliveries and their attempts as they are; ones already there are kept."""

    async def export_dead_letters(self, after: int, limit: int) -> list[DeadLetter]:
        """Dead letters of every tenant with ``seq > after``, in seq order."""

    async def import_dead_letters(self, rows: Sequence[DeadLetter]) -> None:
        """Store dead letters with their own ids and positions; ones already there are kept."""
