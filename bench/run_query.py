"""Query benchmark: a filtered page of 100 from 1,000,000 stored events, on each store.

Loads the same generated events into a SQLite file and a PostgreSQL database (created here and
dropped at the end), then times ``store.query`` (the code behind ``GET /v1/events``, without
HTTP) for every filter shape of DESIGN.md section 4, each value drawn at random per query so
no single answer stays cached. Prints p50/p99/max per shape and store, and with ``--explain``
the PostgreSQL plans.

    .venv/bin/python bench/run_query.py                     # 1,000,000 events, 300 queries a shape
    .venv/bin/python bench/run_query.py --events 100000 --queries 50   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from statistics import quantiles
from typing import Any

import orjson

from tidings.envelope import Candidate, Filter, parse_filter
from tidings.envelope.ids import uuid7
from tidings.envelope.timefmt import now_us
from tidings.store import Query, Store
from tidings.store.postgres import PostgresStore
from tidings.store.postgres.filter_sql import EVENT_COLUMNS, Params, filter_clause
from tidings.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOMAINS = [f"d{n}" for n in range(5)]
ENTITIES = [f"e{n}" for n in range(10)]
ACTIONS = ["created", "updated", "deleted", "viewed"]
SOURCES = [f"source-{n}" for n in range(10)]
SUBJECTS = 5000
CATEGORIES = [f"c{n}" for n in range(10)]
ROOMS = [f"room-{n}" for n in range(50)]
KINDS = ["audit", "metric", "log", "trace", "alert"]
DAY_US = 86_400_000_000


def generate(count: int, seed: int = 7) -> list[Candidate]:
    rng = random.Random(seed)
    start = now_us() - 30 * DAY_US
    out = []
    for n in range(count):
        data = {
            "category": rng.choice(CATEGORIES),
            "level": n % 100,
            "device": {"room": rng.choice(ROOMS)},
        }
        out.append(
            Candidate(
                id=uuid7(),
                type=f"{rng.choice(DOMAINS)}.{rng.choice(ENTITIES)}.{rng.choice(ACTIONS)}",
                source=rng.choice(SOURCES),
                subject=f"device-{rng.randrange(SUBJECTS)}",
                time_us=start + n * (30 * DAY_US // count),
                trace_id=uuid7().replace("-", ""),
                idempotency_key=None,
                data_json=orjson.dumps(data).decode(),
                metadata_json=orjson.dumps({"kind": rng.choice(KINDS)}).decode(),
            )
        )
    return out


@dataclass
class Bounds:
    """What the generated log spans, for the window shapes."""

    received: list[int]  # received_at of every 1,000th event, in seq order
    traces: list[str]  # trace_id of every 1,000th event
    head: int
    time_lo: int
    time_hi: int


Shape = tuple[str, Any]  # name, rng -> Query


def shapes(b: Bounds) -> list[Shape]:
    def window(rng: random.Random, width: float) -> tuple[int, int]:
        lo = rng.randrange(0, int(len(b.received) * (1 - width)))
        return b.received[lo], b.received[lo + int(len(b.received) * width) - 1]

    def q(flt: dict[str, Any] | None = None, **bounds: Any) -> Query:
        return Query(filter=parse_filter(flt or {}), **bounds)

    span = b.time_hi - b.time_lo
    return [
        ("latest page (no filter)", lambda r: q()),
        ("type (one literal)", lambda r: q({"type": f"{r.choice(DOMAINS)}.e1.created"})),
        ("type (two literals)", lambda r: q({"type": "d1.e1.created,d2.e2.viewed"})),
        ("type pattern a.*.c", lambda r: q({"type": f"{r.choice(DOMAINS)}.*.deleted"})),
        ("type pattern a.#", lambda r: q({"type": f"{r.choice(DOMAINS)}.#"})),
        ("source", lambda r: q({"source": r.choice(SOURCES)})),
        ("exclude_source", lambda r: q({"exclude_source": r.choice(SOURCES)})),
        ("subject (1 in 5,000)", lambda r: q({"subject": f"device-{r.randrange(SUBJECTS)}"})),
        ("trace_id (one trace)", lambda r: q({"trace_id": r.choice(b.traces)})),
        ("data.category (1 in 10)", lambda r: q({"data.category": r.choice(CATEGORIES)})),
        ("data.device.room (1 in 50)", lambda r: q({"data.device.room": r.choice(ROOMS)})),
        ("data.level number (1 in 100)", lambda r: q({"data.level": str(r.randrange(100))})),
        ("metadata.kind (1 in 5)", lambda r: q({"metadata.kind": r.choice(KINDS)})),
        (
            "since/until (25% of the log)",
            lambda r: q(None, **dict(zip(("since_us", "until_us"), window(r, 0.25), strict=True))),
        ),
        (
            "since/until, ascending",
            lambda r: q(
                None,
                order="asc",
                **dict(zip(("since_us", "until_us"), window(r, 0.25), strict=True)),
            ),
        ),
        (
            "time_since/time_until (25%)",
            lambda r: q(
                None,
                time_since_us=(lo := b.time_lo + r.randrange(span * 3 // 4)),
                time_until_us=lo + span // 4,
            ),
        ),
        (
            "after/before (seq range)",
            lambda r: q(None, after=(lo := r.randrange(b.head // 2)), before=lo + b.head // 4),
        ),
        (
            "source + since/until",
            lambda r: q(
                {"source": r.choice(SOURCES)},
                **dict(zip(("since_us", "until_us"), window(r, 0.25), strict=True)),
            ),
        ),
        (
            "type + data.category",
            lambda r: q({"type": f"{r.choice(DOMAINS)}.#", "data.category": r.choice(CATEGORIES)}),
        ),
    ]


async def load(store: Store, candidates: list[Candidate], batch: int = 5000) -> float:
    started = time.perf_counter()
    for lo in range(0, len(candidates), batch):
        await store.append(candidates[lo : lo + batch])
    return time.perf_counter() - started


async def bounds_of(store: Store) -> Bounds:
    received, traces, time_lo, time_hi = [], [], None, None
    after = 0
    while True:
        page = await store.read_log(after, store.head(), 1000)
        if not page:
            break
        received.append(page[0].received_at_us)
        traces.append(page[0].trace_id)
        times = [e.time_us for e in page]
        time_lo = min(times) if time_lo is None else min(time_lo, *times)
        time_hi = max(times) if time_hi is None else max(time_hi, *times)
        after = page[-1].seq
    assert time_lo is not None and time_hi is not None
    return Bounds(received, traces, store.head(), time_lo, time_hi)


async def measure(store: Store, shape: Shape, queries: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    name, build = shape
    for _ in range(10):  # warm-up: plans, caches, pooled connections
        await store.query("default", build(rng))
    timings, sizes = [], []
    for _ in range(queries):
        query = build(rng)
        t0 = time.perf_counter()
        page = await store.query("default", query)
        timings.append((time.perf_counter() - t0) * 1000)
        sizes.append(len(page))
    cuts = quantiles(timings, n=100, method="inclusive")
    return {
        "shape": name,
        "p50_ms": round(cuts[49], 2),
        "p99_ms": round(cuts[98], 2),
        "max_ms": round(max(timings), 2),
        "mean_rows": round(sum(sizes) / len(sizes), 1),
    }


async def explain(store: PostgresStore, flt: Filter, extra: str = "") -> str:
    params = Params("default")
    where = " AND ".join(["tenant = $1", *filter_clause(flt, params)])
    sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE {where}{extra} ORDER BY seq DESC LIMIT 100"

    async def run(conn: Any) -> str:
        rows = await conn.fetch("EXPLAIN (ANALYZE, COSTS OFF) " + sql, *params.values)
        return "\n".join(r[0] for r in rows)

    return await store.run(run)


def psql(server: str, sql: str) -> None:
    subprocess.run(["psql", f"{server}/postgres", "-qAtc", sql], check=True, timeout=120)


async def bench_store(
    name: str, store: Store, candidates: list[Candidate], queries: int
) -> tuple[dict[str, Any], Bounds]:
    await store.open()
    try:
        print(f"{name}: loading {len(candidates):,} events", file=sys.stderr, flush=True)
        load_s = await load(store, candidates)
        if isinstance(store, PostgresStore):
            await store.run(lambda conn: conn.execute("VACUUM ANALYZE events"))
        b = await bounds_of(store)
        rows = []
        for index, shape in enumerate(shapes(b)):
            result = await measure(store, shape, queries, seed=index)
            print(f"  {name:8} {result}", file=sys.stderr, flush=True)
            rows.append(result)
        return {"store": name, "load_s": round(load_s, 1), "shapes": rows}, b
    finally:
        if not isinstance(store, PostgresStore):
            await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300, help="timed queries per shape")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--explain", action="store_true", help="print PostgreSQL plans")
    args = parser.parse_args()
    started = datetime.now(UTC)
    candidates = generate(args.events)
    results = []
    work = Path(tempfile.mkdtemp(prefix="tidings-query-"))
    database = f"tidings_query_bench_{started:%H%M%S}"
    try:
        if "sqlite" in args.stores:
            outcome, _ = await bench_store(
                "sqlite", SqliteStore(work / "tidings.db"), candidates, args.queries
            )
            results.append(outcome)
        if "postgres" in args.stores:
            psql(args.postgres, f'CREATE DATABASE "{database}"')
            store = PostgresStore(f"{args.postgres}/{database}")
            try:
                outcome, _ = await bench_store("postgres", store, candidates, args.queries)
                results.append(outcome)
                if args.explain:
                    for title, flt in (
                        ("data.category = c3", parse_filter({"data.category": "c3"})),
                        ("type = d1.e1.created", parse_filter({"type": "d1.e1.created"})),
                        ("subject = device-42", parse_filter({"subject": "device-42"})),
                    ):
                        print(f"\n-- {title}\n{await explain(store, flt)}")
            finally:
                await store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if "postgres" in args.stores:
            psql(args.postgres, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    command = " ".join([".venv/bin/python", "bench/run_query.py", *sys.argv[1:]])
    print(f"\nCommand: `{command}` ({started:%Y-%m-%d %H:%M} UTC, {args.events:,} events, "
          f"{args.queries} queries a shape)\n")  # fmt: skip
    names = [r["store"] for r in results]
    print("| shape | " + " | ".join(f"{n} p50 ms | {n} p99 ms | {n} max ms" for n in names) + " |")
    print("|---|" + "---:|" * 3 * len(names))
    for index, shape in enumerate(results[0]["shapes"]):
        cells = []
        for r in results:
            s = r["shapes"][index]
            cells += [f"{s['p50_ms']:.2f}", f"{s['p99_ms']:.2f}", f"{s['max_ms']:.1f}"]
        print(f"| {shape['shape']} | " + " | ".join(cells) + " |")
    print("\nLoad time: " + ", ".join(f"{r['store']} {r['load_s']} s" for r in results))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"query-{started:%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps({"command": command, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
