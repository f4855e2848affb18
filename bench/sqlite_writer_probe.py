"""CPU per event of the SQLite writer thread under batch publishing, without HTTP.

Builds 100-event batches the way the API does (``candidates_from_json`` on the body
``bench/wrk/publish_batch100.lua`` sends), queues ``--callers`` of them at once on a fresh
store's writer (so groups are the size 16 wrk connections produce), and reports the writer
thread's CPU (``pthread_getcpuclockid``) and the whole process's, per event. The batches are
built before the clock starts, so the process figure is the writer plus the event loop's
share of answering and the live fan-out.

    .venv/bin/python bench/sqlite_writer_probe.py --rounds 200 --callers 16
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import orjson

from tidings.envelope.validate import Limits, PublishContext, candidates_from_json
from tidings.store.sqlite.store import SqliteStore

PRAGMAS: list[str] = []


def body(thread_id: int, start: int, size: int) -> list[dict[str, object]]:
    return [
        {
            "type": f"bench.t{thread_id}.published",
            "source": "bench",
            "subject": f"dev-{n % 100}",
            "data": {"n": n, "switch": "on", "level": 42, "room": "kitchen"},
        }
        for n in range(start, start + size)
    ]


async def run(path: Path, rounds: int, callers: int, size: int, synchronous: str) -> None:
    store = SqliteStore(path, synchronous=synchronous)
    await store.open()
    writer = store._require_writer()
    for pragma in PRAGMAS:
        writer._conn.execute(pragma)
    clock = time.pthread_getcpuclockid(writer._thread.ident or 0)
    seen = 0

    def listener(events: list[object]) -> None:
        nonlocal seen
        seen += len(events)

    store.add_commit_listener(listener)  # type: ignore[arg-type]
    ctx = PublishContext()
    limits = Limits()
    batches = [
        [
            candidates_from_json(orjson.loads(orjson.dumps(body(c, r * size, size))), ctx, limits)[
                0
            ]
            for c in range(callers)
        ]
        for r in range(rounds)
    ]
    # warm up
    await asyncio.gather(*(store.append(b) for b in batches[0]))
    w0 = time.clock_gettime(clock)
    p0 = time.process_time()
    t0 = time.perf_counter()
    for group in batches[1:]:
        await asyncio.gather(*(store.append(b) for b in group))
    wall = time.perf_counter() - t0
    writer_cpu = time.clock_gettime(clock) - w0
    process_cpu = time.process_time() - p0
    events = (rounds - 1) * callers * size
    await store.close()
    print(
        f"events {events}  groups of {callers * size}  synchronous={synchronous}  "
        f"writer thread {writer_cpu / events * 1e6:.2f} us/event  "
        f"process {process_cpu / events * 1e6:.2f} us/event  "
        f"wall {wall / events * 1e6:.2f} us/event  (live events seen {seen})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--synchronous", default="FULL")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pragma", action="append", default=[])
    args = parser.parse_args()
    PRAGMAS.extend(args.pragma)
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(
                run(Path(tmp) / "t.db", args.rounds, args.callers, args.size, args.synchronous)
            )


if __name__ == "__main__":
    main()
