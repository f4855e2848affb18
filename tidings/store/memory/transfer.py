"""``Transfer`` in memory: the same copy rules over the in-memory twins' own structures."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from tidings.store.dead_letters import DeadLetter
from tidings.store.memory.deliveries import MemoryDeliveryStore, _Row
from tidings.store.memory.state import MemoryDeadLetters
from tidings.store.transfer import StoredDelivery, StoredEvent

if TYPE_CHECKING:
    from tidings.testing import MemoryStore


class MemoryTransfer:
    def __init__(
        self,
        events: MemoryStore,
        deliveries: MemoryDeliveryStore,
        dead_letters: MemoryDeadLetters,
    ) -> None:
        self._events = events
        self._deliveries = deliveries
        self._dead_letters = dead_letters

    async def is_empty(self) -> bool:
        return not (
            self._events._last_seq
            or self._deliveries._endpoints
            or self._deliveries._rows
            or self._dead_letters._letters
        )

    async def export_events(self, after: int, limit: int) -> list[StoredEvent]:
        log = self._events._log
        keys = {id(event): key for (_, key), event in self._events._by_key.items()}
        start = bisect_right(log, after, key=lambda e: e.seq)
        return [StoredEvent(e, keys.get(id(e))) for e in log[start : start + limit]]

    async def import_events(self, rows: Sequence[StoredEvent]) -> None:
        store = self._events
        for row in rows:
            event = replace(row.event)
            if event.seq <= store._last_seq:
                continue  # there already (a resumed copy)
            store._log.append(event)
            store._by_id[(event.tenant, event.id)] = event
            if row.dedupe_key is not None:
                store._by_key[(event.tenant, row.dedupe_key)] = event
            store._last_seq = event.seq
            store._last_received_us = max(store._last_received_us, event.received_at_us)

    async def export_purges(self) -> dict[str, int]:
        return dict(self._events._purged)

    async def import_purges(self, purged: dict[str, int]) -> None:
        for tenant, through in purged.items():
            known = self._events._purged.get(tenant, 0)
            self._events._purged[tenant] = max(known, through)

    async def export_deliveries(self, after_id: str, limit: int) -> list[StoredDelivery]:
        found = sorted(i for i in self._deliveries._rows if i > after_id)[:limit]
        attempts = self._deliveries._attempts
        return [
            StoredDelivery(
                replace(self._deliveries._rows[i].delivery),
                [replace(a) for _, a in sorted(attempts.get(i, {}).items())],
            )
            for i in found
        ]

    async def import_deliveries(self, rows: Sequence[StoredDelivery]) -> None:
        for row in rows:
            delivery = row.delivery
            if delivery.id in self._deliveries._rows:
                continue
            self._deliveries._rows[delivery.id] = _Row(replace(delivery), None)
            self._deliveries._attempts[delivery.id] = {a.n: replace(a) for a in row.attempts}

    async def export_dead_letters(self, after: int, limit: int) -> list[DeadLetter]:
        return [d for d in self._dead_letters._letters if d.seq > after][:limit]

    async def import_dead_letters(self, rows: Sequence[DeadLetter]) -> None:
        known = {d.seq for d in self._dead_letters._letters}
        for letter in rows:
            if letter.seq not in known:
                self._dead_letters._letters.append(letter)
        self._dead_letters._letters.sort(key=lambda d: d.seq)
        self._dead_letters._seq = max(
            [self._dead_letters._seq, *(d.seq for d in self._dead_letters._letters)]
        )
