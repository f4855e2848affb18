"""Bucket grids and chart series built from store counts (no I/O)."""

from __future__ import annotations

from tidings.counts import DAY_US, HOUR_US, Grid, align, default_since, series
from tidings.envelope.timefmt import parse_iso
from tidings.store import BucketCount

MIDNIGHT = parse_iso("2026-11-23T00:00:00Z")


def test_a_grid_covers_the_buckets_holding_both_ends() -> None:
    grid = Grid.covering(MIDNIGHT + 90 * 60_000_000, MIDNIGHT + 3 * HOUR_US, HOUR_US, 0)

    assert (grid.first_us, grid.last_us, grid.size) == (
        MIDNIGHT + HOUR_US,
        MIDNIGHT + 3 * HOUR_US,
        3,
    )
    assert grid.starts() == [MIDNIGHT + h * HOUR_US for h in (1, 2, 3)]


def test_day_buckets_start_at_local_midnight() -> None:
    east = Grid.covering(MIDNIGHT + HOUR_US, MIDNIGHT + HOUR_US, DAY_US, 60)  # UTC+1
    west = Grid.covering(MIDNIGHT + HOUR_US, MIDNIGHT + HOUR_US, DAY_US, -330)  # UTC-5:30

    assert east.first_us == MIDNIGHT - HOUR_US  # 00:00 at UTC+1 is 23:00 UTC the day before
    assert east.origin_us == 23 * HOUR_US
    assert west.first_us == MIDNIGHT - DAY_US + 5 * HOUR_US + 30 * 60_000_000


def test_half_hour_zones_shift_hour_buckets_too() -> None:
    grid = Grid.covering(MIDNIGHT, MIDNIGHT, HOUR_US, 330)  # UTC+5:30

    assert grid.first_us == MIDNIGHT - 30 * 60_000_000


def test_align_and_default_since() -> None:
    assert align(MIDNIGHT + 5, HOUR_US, 0) == MIDNIGHT
    assert default_since(MIDNIGHT + 5, HOUR_US, 0, 48) == MIDNIGHT - 47 * HOUR_US
    assert default_since(MIDNIGHT + 5, DAY_US, 0, 1) == MIDNIGHT


def test_series_are_dense_ranked_and_fold_the_rest() -> None:
    grid = Grid.covering(MIDNIGHT, MIDNIGHT + 2 * HOUR_US, HOUR_US, 0)
    rows = [
        BucketCount(MIDNIGHT, "b", 2),
        BucketCount(MIDNIGHT, "a", 2),
        BucketCount(MIDNIGHT + 2 * HOUR_US, "c", 1),
        BucketCount(MIDNIGHT + 2 * HOUR_US, None, 1),
        BucketCount(MIDNIGHT + 2 * HOUR_US, "d", 1),
        BucketCount(MIDNIGHT + 9 * HOUR_US, "a", 7),  # outside the grid: ignored
    ]

    answer = series(rows, grid, top=3)

    assert answer["starts"] == [
        "2026-11-23T00:00:00.000Z",
        "2026-11-23T01:00:00.000Z",
        "2026-11-23T02:00:00.000Z",
    ]
    assert answer["totals"] == [4, 0, 3]
    assert answer["total"] == 7
    assert answer["series"] == [
        {"key": "a", "total": 2, "counts": [2, 0, 0]},
        {"key": "b", "total": 2, "counts": [2, 0, 0]},
        {"key": "c", "total": 1, "counts": [0, 0, 1]},
        {"key": None, "other": True, "keys": 2, "total": 2, "counts": [0, 0, 2]},
    ]


def test_series_without_rows_are_zeros_and_no_keys() -> None:
    grid = Grid.covering(MIDNIGHT, MIDNIGHT + DAY_US, DAY_US, 0)

    answer = series([], grid, top=10)

    assert (answer["totals"], answer["total"], answer["series"]) == ([0, 0], 0, [])
