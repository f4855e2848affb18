"""Pages over a ``time_since``/``time_until`` window on PostgreSQL, through the block summary."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tidings.store.postgres.pages import Page, read_page
from tidings.store.sql import load_queries
from tidings.store.time_blocks import BLOCK, STEP, Window, complete_below, segments

Q = load_queries("tidings.store.postgres", "time_blocks.sql")
_LOWEST, _HIGHEST = -(2**63), 2**63 - 1
NO_BLOCK = 2**53  # beyond any block


async def read_time_page(conn: Any, page: Page) -> list[Any]:
    """The rows of ``page`` (which has a time window), in its order."""
    if page.limit <= 0:
        return []
    window = Window(page.order, page.after, page.before)
    first, last = window.block_range(NO_BLOCK)  # the summary's end is applied in the query
    since = _LOWEST if page.time_since_us is None else page.time_since_us
    until = _HIGHEST if page.time_until_us is None else page.time_until_us
    name = "overlapping_asc" if page.order == "asc" else "overlapping_desc"
    summarised, blocks = await conn.fetchrow(Q[name], page.tenant, first, last, since, until)
    rows: list[Any] = []
    for after, before in segments(window, int(summarised), blocks):
        part = replace(page, after=after, before=before, limit=page.limit - len(rows))
        rows.extend(await read_page(conn, part))
        if len(rows) >= page.limit:
            break
    return rows


async def summarise(conn: Any) -> int:
    """Summarise from the first unsummarised block on (at most ``STEP`` blocks, up to the
    last complete one); returns the new first unsummarised block."""
    async with conn.transaction():
        start = int(await conn.fetchval(Q["lock_summary"]))
        head = int(await conn.fetchval(Q["head"]))
        end = min(complete_below(head), start + STEP)
        if end <= start:
            return start
        await conn.execute(Q["summarise"], BLOCK, start * BLOCK, end * BLOCK)
        await conn.execute(Q["summarised_to"], end)
        return end


async def prune(conn: Any) -> None:
    await conn.execute(Q["prune"], BLOCK)


async def summarised(conn: Any) -> int:
    return int(await conn.fetchval(Q["summarised"]))
