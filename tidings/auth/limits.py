"""Per-key limits and refusal throttling, without I/O: every method takes the time."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any


class TokenBucket:
    """``rate`` tokens a second, holding at most one second's worth (the burst).

    A request costing more than the burst (a large batch) is let through when the bucket is
    full and leaves it in debt, repaid before the next one passes: otherwise a batch larger
    than one second's worth could never be sent at all.
    """

    __slots__ = ("_stamp", "capacity", "rate", "tokens")

    def __init__(self, rate: float, now: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate  # tokens added per second
        self.capacity = max(rate, 1.0)  # the burst: one second's worth (at least one)
        self.tokens = self.capacity  # may go below zero after an oversized request
        self._stamp = now

    def _refill(self, now: float) -> None:
        elapsed = now - self._stamp
        if elapsed > 0:
            self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
            self._stamp = now

    def take(self, cost: float, now: float) -> float:
        """Take ``cost`` tokens: 0.0 when taken, else the seconds to wait before retrying."""
        self._refill(now)
        needed = min(cost, self.capacity)
        if self.tokens >= needed:
            self.tokens -= cost
            return 0.0
        return (needed - self.tokens) / self.rate


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least one."""
    return str(max(1, math.ceil(seconds)))


class StreamSlots:
    """Open streams per key, against each key's own ``max_streams``."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}  # key id -> open streams

    def acquire(self, key_id: str, limit: int) -> bool:
        count = self._open.get(key_id, 0)
        if count >= limit:
            return False
        self._open[key_id] = count + 1
        return True

    def release(self, key_id: str) -> None:
        count = self._open.get(key_id, 0) - 1
        if count > 0:
            self._open[key_id] = count
        else:
            self._open.pop(key_id, None)

    def open(self, key_id: str) -> int:
        return self._open.get(key_id, 0)


class RefusalGate:
    """Decides which refusals reach the audit trail: at most one a minute per (key prefix,
    address), and at most ``per_address`` a minute per address whatever the prefixes, so
    10,000 different wrong keys from one address make a handful of audit events.

    The refusals left out are counted and reported with the address's next recorded one.
    Bounded: past ``capacity`` entries the oldest are forgotten.
    """

    def __init__(
        self, interval: float = 60.0, per_address: int = 5, capacity: int = 10_000
    ) -> None:
        self.interval = interval  # seconds between two audit events for one pair
        self.per_address = per_address  # audit events per address per interval
        self.capacity = capacity  # pairs and addresses remembered at most
        self._pairs: OrderedDict[tuple[str, str], float] = OrderedDict()  # pair -> last kept
        self._addresses: OrderedDict[str, list[float]] = OrderedDict()  # address -> times kept
        self._left_out: dict[str, int] = {}  # address -> refusals not recorded since the last

    def admit(self, prefix: str, address: str, now: float) -> int | None:
        """None when this refusal is left out; else how many were left out before it."""
        pair = (prefix, address)
        last = self._pairs.get(pair)
        times = [t for t in self._addresses.get(address, ()) if now - t < self.interval]
        if (last is not None and now - last < self.interval) or len(times) >= self.per_address:
            self._left_out[address] = self._left_out.get(address, 0) + 1
            if times:
                self._addresses[address] = times
            return None
        times.append(now)
        _remember(self._pairs, pair, now, self.capacity)
        _remember(self._addresses, address, times, self.capacity)
        if len(self._left_out) > self.capacity:
            self._left_out.clear()
        return self._left_out.pop(address, 0)


def _remember(table: OrderedDict[Any, Any], key: Any, value: Any, capacity: int) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > capacity:
        table.popitem(last=False)
