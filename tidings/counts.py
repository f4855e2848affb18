"""Event counts as chart series: the bucket grid, the top keys and the rest folded together.

No I/O: the store counts (``Store.count_buckets``); this turns its rows into dense series a
chart can draw as they are (one value per bucket, zeros included).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from tidings.envelope.timefmt import format_us
from tidings.store import BucketCount

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
Bucket = Literal["hour", "day"]
WIDTHS: dict[str, int] = {"hour": HOUR_US, "day": DAY_US}
DEFAULT_BUCKETS: dict[str, int] = {"hour": 48, "day": 30}  # the span when `since` is not given
MAX_BUCKETS = 2000  # a wider grid is refused: a chart cannot show it and the answer would be large
MAX_UTC_OFFSET_MIN = 18 * 60  # ISO 8601 offsets stay within +-18:00


@dataclass(frozen=True, slots=True)
class Grid:
    """Buckets of ``width_us`` starting at ``origin_us + k * width_us``, first to last inclusive."""

    width_us: int
    origin_us: int
    first_us: int
    last_us: int

    @classmethod
    def covering(cls, since_us: int, until_us: int, width_us: int, utc_offset_min: int) -> Grid:
        """The buckets that hold ``since_us`` through ``until_us``, aligned to local time.

        A zone at UTC+1 starts its days at 23:00 UTC, so day buckets start there.
        """
        origin = (-utc_offset_min * 60_000_000) % width_us
        return cls(
            width_us, origin, align(since_us, width_us, origin), align(until_us, width_us, origin)
        )

    @property
    def size(self) -> int:
        return (self.last_us - self.first_us) // self.width_us + 1

    def starts(self) -> list[int]:
        return list(range(self.first_us, self.last_us + 1, self.width_us))


def align(moment_us: int, width_us: int, origin_us: int) -> int:
    """The start of the bucket that holds ``moment_us``."""
    return origin_us + (moment_us - origin_us) // width_us * width_us


def default_since(until_us: int, width_us: int, utc_offset_min: int, buckets: int) -> int:
    """The start of the bucket ``buckets - 1`` before the one holding ``until_us``."""
    origin = (-utc_offset_min * 60_000_000) % width_us
    return align(until_us, width_us, origin) - (buckets - 1) * width_us


def series(rows: Iterable[BucketCount], grid: Grid, top: int) -> dict[str, Any]:
    """The counts as dense series: the ``top`` keys by total, then one ``other`` for the rest.

    Keys tie-break by name so the answer is stable. The key ``None`` (events without a
    subject, say) is a key like any other.
    """
    size = grid.size
    totals = [0] * size
    per_key: dict[str | None, list[int]] = defaultdict(lambda: [0] * size)
    for row in rows:
        index = (row.start_us - grid.first_us) // grid.width_us
        if 0 <= index < size:
            totals[index] += row.count
            per_key[row.key][index] += row.count
    ranked = sorted(
        per_key.items(), key=lambda item: (-sum(item[1]), item[0] is None, item[0] or "")
    )
    out: list[dict[str, Any]] = [
        {"key": key, "total": sum(counts), "counts": counts} for key, counts in ranked[:top]
    ]
    rest = ranked[top:]
    if rest:
        folded = [sum(column) for column in zip(*(counts for _, counts in rest), strict=True)]
        out.append(
            {"key": None, "other": True, "keys": len(rest), "total": sum(folded), "counts": folded}
        )
    return {
        "starts": [format_us(start) for start in grid.starts()],
        "totals": totals,
        "total": sum(totals),
        "series": out,
    }
