"""Sink cursors, dead letters and leases in dicts and lists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from tidings.envelope import DEFAULT_TENANT
from tidings.envelope.timefmt import now_us
from tidings.store.dead_letters import DeadLetter, DeadLetterQuery, DeadLetterWriter
from tidings.store.leases import Lease, check_ttl
from tidings.store.sink_cursors import SinkCursor


class MemorySinkCursors:
    def __init__(self) -> None:
        self._cursors: dict[str, SinkCursor] = {}  # by sink name

    async def sink_cursor(self, sink: str) -> int | None:
        found = self._cursors.get(sink)
        return found.position if found is not None else None

    async def set_sink_cursor(self, sink: str, tenant: str, position: int, now_us: int) -> None:
        known = self._cursors.get(sink)
        if known is not None:
            tenant, position = known.tenant, max(known.position, position)
        self._cursors[sink] = SinkCursor(sink, tenant, position, now_us)

    async def list_sink_cursors(self) -> list[SinkCursor]:
        return [self._cursors[sink] for sink in sorted(self._cursors)]

    async def delete_sink_cursor(self, sink: str) -> bool:
        return self._cursors.pop(sink, None) is not None

    async def retention_floor(self) -> int | None:
        positions = [c.position for c in self._cursors.values()]
        return min(positions) + 1 if positions else None


class MemoryDeadLetters(DeadLetterWriter):
    """``clock`` (microseconds since the epoch) stamps ``received_at``."""

    def __init__(self, *, clock: Callable[[], int] = now_us) -> None:
        self.clock = clock
        self._letters: list[DeadLetter] = []  # in seq order
        self._seq = 0  # the last position given: never reused, as on disk

    def _received_us(self) -> int:
        return self.clock()

    async def _insert(self, letter: DeadLetter) -> int:
        self._seq += 1
        self._letters.append(replace(letter, seq=self._seq))
        return self._seq

    async def get(self, letter_id: str, tenant: str = DEFAULT_TENANT) -> DeadLetter | None:
        return next((d for d in self._letters if (d.tenant, d.id) == (tenant, letter_id)), None)

    async def find(self, query: DeadLetterQuery, tenant: str = DEFAULT_TENANT) -> list[DeadLetter]:
        found = [d for d in self._letters if d.tenant == tenant and query.matches(d)]
        if query.order == "desc":
            found.reverse()
        return found[: max(query.limit, 0)]

    async def delete(self, letter_id: str, tenant: str = DEFAULT_TENANT) -> bool:
        before = len(self._letters)
        self._letters = [d for d in self._letters if (d.tenant, d.id) != (tenant, letter_id)]
        return len(self._letters) < before

    async def last_seq(self, tenant: str = DEFAULT_TENANT) -> int:
        return max((d.seq for d in self._letters if d.tenant == tenant), default=0)


class MemoryLeases:
    def __init__(self) -> None:
        self._leases: dict[str, Lease] = {}  # by name; released ones stay, expired

    async def acquire(
        self, name: str, holder: str, now_us: int, ttl_us: int, tenant: str = "default"
    ) -> Lease | None:
        check_ttl(ttl_us)
        known = self._leases.get(name)
        if known is None:
            generation = 1
        elif known.holder == holder:
            generation = known.generation
        elif known.expires_at_us <= now_us:
            generation = known.generation + 1
        else:
            return None
        lease = Lease(name, tenant, holder, now_us + ttl_us, generation)
        self._leases[name] = lease
        return lease

    async def renew(self, name: str, holder: str, now_us: int, ttl_us: int) -> Lease | None:
        check_ttl(ttl_us)
        known = self._leases.get(name)
        if known is None or not known.held_by(holder, now_us):
            return None
        lease = Lease(name, known.tenant, holder, now_us + ttl_us, known.generation)
        self._leases[name] = lease
        return lease

    async def release(self, name: str, holder: str) -> bool:
        known = self._leases.get(name)
        if known is None or known.holder != holder or known.expires_at_us <= 0:
            return False
        self._leases[name] = Lease(name, known.tenant, holder, 0, known.generation)
        return True

    async def get(self, name: str) -> Lease | None:
        return self._leases.get(name)
