"""What a store's stats count, and how the counts become :class:`StoreStats` (no I/O).

Every store counts the same things over the same window; only how it counts differs.
"""

from __future__ import annotations

from collections.abc import Iterable

from tidings.envelope.timefmt import format_us
from tidings.store.base import StoreStats

HOUR_US = 3_600_000_000
STATS_HOURS = 48  # events are counted by hour over this window
STATS_TOP = 100  # types and sources listed


def hours_since(now_us: int) -> int:
    """Where the hourly counts start: ``STATS_HOURS`` before ``now_us``."""
    return now_us - STATS_HOURS * HOUR_US


def store_stats(
    *,
    total: int,
    by_type: Iterable[tuple[str, int]],
    by_source: Iterable[tuple[str, int]],
    by_hour: Iterable[tuple[int, int]],  # (hours since the epoch, events), oldest first
    head_seq: int,
    earliest_seq: int | None,
    size_bytes: int,
) -> StoreStats:
    return StoreStats(
        total=int(total),
        by_type={name: int(n) for name, n in by_type},
        by_source={name: int(n) for name, n in by_source},
        by_hour=[{"hour": format_us(h * HOUR_US), "count": int(n)} for h, n in by_hour],
        head_seq=head_seq,
        earliest_seq=earliest_seq,
        size_bytes=int(size_bytes),
    )
