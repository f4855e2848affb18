"""Which runs of positions a page over a producer-time window reads, and in which order."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from tidings.store.time_blocks import (
    BLOCK,
    LAG,
    Catchup,
    Window,
    block_of,
    complete_below,
    runs,
    segments,
)


def test_a_block_is_complete_once_the_head_reaches_its_last_position() -> None:
    assert complete_below(0) == 0
    assert complete_below(BLOCK - 2) == 0
    assert complete_below(BLOCK - 1) == 1  # block 0 holds 0 .. BLOCK - 1
    assert complete_below(2 * BLOCK) == 2
    assert block_of(BLOCK - 1) == 0 and block_of(BLOCK) == 1


def test_runs_group_consecutive_blocks_in_either_order() -> None:
    assert list(runs([])) == []
    assert list(runs([3])) == [(3, 3)]
    assert list(runs([1, 2, 3, 7, 9, 10])) == [(1, 3), (7, 7), (9, 10)]
    assert list(runs([10, 9, 7, 3, 2, 1])) == [(9, 10), (7, 7), (1, 3)]


def test_a_descending_page_reads_the_unsummarised_tail_first() -> None:
    window = Window("desc", None, None)
    assert list(segments(window, 3, [2, 0])) == [
        (3 * BLOCK - 1, None),
        (2 * BLOCK - 1, 3 * BLOCK),
        (-1, BLOCK),
    ]


def test_an_ascending_page_reads_the_tail_last() -> None:
    window = Window("asc", None, None)
    assert list(segments(window, 3, [0, 1])) == [(-1, 2 * BLOCK), (3 * BLOCK - 1, None)]


def test_seq_bounds_clip_every_segment_and_drop_the_empty_ones() -> None:
    window = Window("desc", BLOCK + 10, 2 * BLOCK + 5)
    # the tail starts at 3 * BLOCK, beyond ``before``: not read at all
    assert list(segments(window, 3, [2, 1])) == [(BLOCK + 10, 2 * BLOCK + 5)]  # one run
    assert list(segments(window, 3, [2, 0])) == [(2 * BLOCK - 1, 2 * BLOCK + 5)]
    assert list(segments(Window("asc", 2 * BLOCK - 2, 2 * BLOCK), 3, [1])) == [
        (2 * BLOCK - 2, 2 * BLOCK)
    ]
    assert list(segments(Window("asc", 2 * BLOCK - 1, 2 * BLOCK), 3, [1])) == []


def test_nothing_summarised_reads_the_whole_log_as_the_tail() -> None:
    assert list(segments(Window("desc", 5, 9), 0, [])) == [(5, 9)]
    assert list(segments(Window("asc", None, None), 0, [])) == [(-1, None)]


def test_the_block_range_follows_the_seq_bounds() -> None:
    assert Window("desc", None, None).block_range(4) == (0, 3)
    assert Window("desc", BLOCK - 1, BLOCK + 1).block_range(4) == (1, 1)
    assert Window("desc", None, 1).block_range(4) == (0, 0)
    first, last = Window("desc", 5 * BLOCK, None).block_range(4)
    assert last < first


@given(
    st.sets(st.integers(0, 30)),
    st.sampled_from(["asc", "desc"]),
    st.one_of(st.none(), st.integers(-1, 40 * BLOCK)),
    st.one_of(st.none(), st.integers(0, 40 * BLOCK)),
    st.integers(0, 31),
)
def test_segments_cover_exactly_the_overlapping_blocks_and_the_tail_in_page_order(
    overlapping: set[int], order: str, after: int | None, before: int | None, summarised: int
) -> None:
    """Every position read lies in an overlapping block or the tail, inside the bounds; every
    such position is read once; and the reading order is the page's."""
    top = 40 * BLOCK
    window = Window("asc" if order == "asc" else "desc", after, before)
    listed = sorted(b for b in overlapping if b < summarised)
    blocks = listed if order == "asc" else listed[::-1]
    first, last = window.block_range(summarised)
    blocks = [b for b in blocks if first <= b <= last]
    parts = list(segments(window, summarised, blocks))
    read = []
    for lo, hi in parts:
        read.extend(range(lo + 1, top if hi is None else hi))
    lo_bound = -1 if after is None else after
    hi_bound = top if before is None else before
    wanted = [
        seq
        for seq in range(lo_bound + 1, hi_bound)
        if seq >= summarised * BLOCK or block_of(seq) in overlapping
    ]
    assert sorted(read) == wanted
    starts = [lo for lo, _ in parts]
    assert starts == sorted(starts, reverse=order == "desc")


async def test_a_catch_up_runs_once_at_a_time_and_only_past_the_lag() -> None:
    calls: list[int] = []
    gate = asyncio.Event()

    async def step(start: int) -> int | None:
        calls.append(start)
        await gate.wait()
        return start + 1 if start < LAG + 1 else None

    summary = Catchup(step)
    summary.nudge(LAG * BLOCK - 2)  # LAG - 1 complete blocks: not yet
    await asyncio.sleep(0)
    assert calls == []
    summary.nudge(LAG * BLOCK - 1)
    summary.nudge(LAG * BLOCK + 5)  # one already running
    await asyncio.sleep(0)
    assert calls == [0]
    gate.set()
    await summary.catch_up()
    assert summary.summarised == LAG + 1
    assert calls[:3] == [0, 1, 2]


async def test_a_failing_catch_up_is_dropped_and_the_next_nudge_tries_again() -> None:
    outcomes: list[int | Exception] = [RuntimeError("server gone"), 1]

    async def step(start: int) -> int | None:
        if not outcomes:
            return None
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    summary = Catchup(step)
    summary.nudge(LAG * BLOCK)
    await asyncio.sleep(0.01)
    assert summary.summarised == 0
    summary.nudge(LAG * BLOCK)
    await asyncio.sleep(0.01)
    assert summary.summarised == 1
    await summary.stop()


async def test_stop_cancels_a_catch_up_in_flight() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def step(start: int) -> int | None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return None

    summary = Catchup(step)
    summary.nudge(LAG * BLOCK)
    await asyncio.wait_for(started.wait(), 5)
    await summary.stop()
    assert cancelled.is_set()
    assert summary.summarised == 0
