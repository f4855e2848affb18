"""Pages with a ``time_since``/``time_until`` window: which runs of positions to read, in order.

The producer's ``time`` has no order and no index: a page over a window of it used to walk the
log by seq until it had ``limit`` matches, a quarter of a million rows for a window that starts
far from the head. Each store keeps a summary of the log in blocks of ``BLOCK`` positions (per
tenant: the block's number and the least and greatest ``time`` in it), like a BRIN index. A
page reads the unsummarised newest positions directly, then only the blocks whose
[least, greatest] overlaps the window, newest first (oldest first for ``asc``), and stops once
it is full. Whatever the producers' clocks do the answer is the same; at worst every block
overlaps and the page walks the log as before.

The summary is written off the commit path, in the background, up to the last complete block
below the committed head. Positions become visible in commit order (docs/topics/ordering.md),
so no event can later appear in a summarised block: the summary stays complete. A purge
leaves blocks that are too wide (still correct) and then drops the ones below each tenant's
oldest event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

BLOCK = 1024  # positions a summary row covers
LAG = 4  # complete blocks left unsummarised before a catch-up starts
STEP = 256  # blocks summarised per transaction, so one catch-up never holds a reader long

log = logging.getLogger("tidings.store")


def block_of(seq: int) -> int:
    return seq // BLOCK


def complete_below(head: int) -> int:
    """The first block not complete at ``head``: every block before it is."""
    return (head + 1) // BLOCK


@dataclass(frozen=True, slots=True)
class Window:
    """The order and the seq bounds of one page over a time window."""

    order: Literal["asc", "desc"]
    after: int | None  # seq > after
    before: int | None  # seq < before

    def block_range(self, summarised: int) -> tuple[int, int]:
        """The summarised blocks the seq bounds reach: first, last (empty when last < first)."""
        first = block_of(self.after + 1) if self.after is not None else 0
        last = summarised - 1
        if self.before is not None:
            last = min(last, block_of(self.before - 1))
        return first, last


def runs(blocks: Iterable[int]) -> Iterator[tuple[int, int]]:
    """Consecutive block numbers (ascending or descending) as (low, high) runs, in order."""
    start = end = None
    for block in blocks:
        if start is not None and end is not None and abs(block - end) == 1:
            end = block
            continue
        if start is not None and end is not None:
            yield min(start, end), max(start, end)
        start = end = block
    if start is not None and end is not None:
        yield min(start, end), max(start, end)


def segments(
    window: Window, summarised: int, blocks: Iterable[int]
) -> Iterator[tuple[int | None, int | None]]:
    """The (after, before) seq bounds to read, in page order.

    ``summarised``: blocks below it are in the summary; ``blocks``: those of them whose time
    range overlaps the window, in page order. The positions from block ``summarised`` on are
    read directly: first for ``desc``, last for ``asc``.
    """
    tail_after = summarised * BLOCK - 1
    tail = (
        max(window.after, tail_after) if window.after is not None else tail_after,
        window.before,
    )
    tail_empty = window.before is not None and window.before - 1 <= tail_after
    if window.order == "desc" and not tail_empty:
        yield tail
    for low, high in runs(blocks):
        after = low * BLOCK - 1
        before = (high + 1) * BLOCK
        if window.after is not None:
            after = max(after, window.after)
        if window.before is not None:
            before = min(before, window.before)
        if before - after > 1:
            yield after, before
    if window.order == "asc" and not tail_empty:
        yield tail


class Catchup:
    """Runs the summary's catch-up in the background, one at a time.

    ``step(summarised)`` summarises from block ``summarised`` on (at most ``STEP`` blocks,
    up to what is complete) and returns the new first unsummarised block, or None when there
    was nothing to do.
    """

    def __init__(self, step: Callable[[int], Awaitable[int | None]], summarised: int = 0) -> None:
        self._step = step
        self.summarised = summarised  # blocks below it are summarised, as far as known here
        self._task: asyncio.Task[None] | None = None

    def nudge(self, head: int) -> None:
        """Start a catch-up if ``head`` left ``LAG`` complete blocks unsummarised."""
        if self._task is not None or complete_below(head) - self.summarised < LAG:
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while True:
                done = await self._step(self.summarised)
                if done is None or done <= self.summarised:
                    return
                self.summarised = done
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a closed store or a lost server: the next nudge retries
            log.debug("the time summary did not catch up: %s", error)
        finally:
            self._task = None

    async def catch_up(self) -> None:
        """Summarise everything complete now, whatever the lag (tests; an idle store)."""
        while self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._task)
        while True:
            done = await self._step(self.summarised)
            if done is None or done <= self.summarised:
                return
            self.summarised = done

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
