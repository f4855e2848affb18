"""CPU per page on SQLite, the SQL before and after the query-plan work, in one process.

Loads ``bench/run_query.py``'s generated events into a SQLite file (created here, deleted at
the end), brings the producer-time summary up to date, then for each shape runs the same
random queries two ways on one connection and prints the thread CPU per page (median, mean):

- before: the single SELECT the store sent until then (no substring prefilter on data
  conditions, ``type IN (...)``, a time window walking the log);
- after: what ``store.query`` sends now (``query_sql`` and the block-summary pages).

    .venv/bin/python bench/query_cpu.py                    # 1,000,000 events
    .venv/bin/python bench/query_cpu.py --events 200000    # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_query import ROOMS, generate, load

from tidings.envelope import parse_filter
from tidings.store import Query
from tidings.store.sqlite import SqliteStore
from tidings.store.sqlite.connection import connect
from tidings.store.sqlite.filter_sql import EVENT_COLUMNS, query_sql, where_clause
from tidings.store.sqlite.time_pages import time_page


def before_sql(q: Query) -> tuple[str, list[Any]]:
    where, params = where_clause("default", q)
    where = where.replace("instr(data, ?) > 0", "(? IS NOT NULL)")  # no prefilter
    sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE {where} ORDER BY seq DESC LIMIT ?"
    return sql, [*params, q.limit]


async def build(path: Path, events: int) -> None:
    store = SqliteStore(path)
    await store.open()
    try:
        await load(store, generate(events))
        await store.time_summary.catch_up()
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tidings-query-cpu-"))
    try:
        asyncio.run(build(work / "tidings.db", args.events))
        conn = connect(work / "tidings.db")
        lo, hi = conn.execute("SELECT min(time_us), max(time_us) FROM events").fetchone()
        span, rng = hi - lo, random.Random(3)

        def window() -> Query:
            start = lo + rng.randrange(span * 3 // 4)
            return Query(time_since_us=start, time_until_us=start + span // 4)

        shapes: dict[str, Callable[[], Query]] = {
            "data.device.room (1 in 50)": lambda: Query(
                filter=parse_filter({"data.device.room": rng.choice(ROOMS)})
            ),
            "data.level number (1 in 100)": lambda: Query(
                filter=parse_filter({"data.level": str(rng.randrange(100))})
            ),
            "type (two literals)": lambda: Query(
                filter=parse_filter({"type": "d1.e1.created,d2.e2.viewed"})
            ),
            "time_since/time_until (25%)": window,
        }
        print("| shape | before: median | mean | after: median | mean |")
        print("|---|---:|---:|---:|---:|")
        for name, make in shapes.items():
            queries = [make() for _ in range(args.queries)]
            cpu: dict[str, list[float]] = {"before": [], "after": []}
            for variant in cpu:
                for q in queries:
                    started = time.thread_time()
                    if variant == "before":
                        rows = conn.execute(*before_sql(q)).fetchall()
                    elif q.time_since_us is not None:
                        rows = time_page(conn, "default", q)
                    else:
                        rows = conn.execute(*query_sql("default", q)).fetchall()
                    cpu[variant].append((time.thread_time() - started) * 1000)
                    assert len(rows) == q.limit
            b, a = cpu["before"], cpu["after"]
            print(
                f"| {name} | {statistics.median(b):.2f} | {statistics.mean(b):.2f} "
                f"| {statistics.median(a):.2f} | {statistics.mean(a):.2f} |"
            )
        conn.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
