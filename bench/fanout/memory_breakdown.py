"""Where an idle SSE connection's memory goes in Tidings: tracemalloc inside the server.

The fan-out benchmark measures memory per idle connection from outside (VmRSS). This script
says what it is made of: it runs the Tidings server in this process (the same app and uvicorn
configuration as ``tidings serve``) with tracemalloc on, opens N idle SSE connections from a
subscriber process, and compares snapshots taken before and after, by source line and by
file, divided by N.

tracemalloc sees the Python heap only (objects and their buffers); RSS also holds the
allocator's slack and C-level buffers (uvloop, httptools), and tracing itself costs memory,
so the RSS printed here is not the benchmark's figure.

    .venv/bin/python bench/fanout/memory_breakdown.py --connections 2000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import tempfile
import tracemalloc
from collections import Counter
from pathlib import Path

from run import LoadGen
from servers import HOST, vm_rss_kb
from subscribers import raise_fd_limit

from tidings.server import build_server
from tidings.settings import Settings


def _top(diff: list[tracemalloc.StatisticDiff], n: int, per: int) -> list[str]:
    lines = []
    for stat in diff[:n]:
        frame = stat.traceback[0]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        lines.append(
            f"{stat.size_diff / per:10.0f} B {stat.count_diff / per:7.2f} blocks  {where}"
            f"  ({Path(frame.filename).parent.name})"
        )
    return lines


def _types() -> Counter[str]:
    """How many objects of each type the garbage collector tracks (containers only)."""
    return Counter(type(o).__qualname__ for o in gc.get_objects())


def _tracebacks(diff: list[tracemalloc.StatisticDiff], n: int, per: int) -> list[str]:
    lines = []
    for stat in diff[:n]:
        lines.append(f"{stat.size_diff / per:10.0f} B {stat.count_diff / per:7.2f} blocks")
        for frame in stat.traceback:
            lines.append(f"        {Path(frame.filename).name}:{frame.lineno}")
    return lines


async def measure(connections: int, port: int, top: int, frames: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="fanout-memory-"))
    settings = Settings(
        port=port, data_dir=data_dir, log_level="warning", heartbeat_s=86_400, host=HOST
    )
    server = build_server(settings)
    serving = asyncio.create_task(server.serve())
    gen = LoadGen(1, 300 + connections / 50)
    path = "/v1/events/stream"
    try:
        for _ in range(300):
            if server.started:
                break
            await asyncio.sleep(0.1)
        await gen.connect(port, path, 10)  # warm-up: every path of a subscription taken once
        await asyncio.to_thread(gen.ask, ("close",))
        await asyncio.sleep(1.0)
        gc.collect()
        types_before = _types()
        before, rss_before = tracemalloc.take_snapshot(), vm_rss_kb(os.getpid())
        opened = await gen.connect(port, path, connections)
        await asyncio.sleep(2.0)
        gc.collect()
        after, rss_after = tracemalloc.take_snapshot(), vm_rss_kb(os.getpid())
        types_after = _types()
        n = max(1, opened["open"])
        traced = sum(s.size_diff for s in after.compare_to(before, "filename"))
        print(f"{opened['open']:,} idle SSE connections")
        print(f"traced Python heap: {traced / n / 1024:.1f} KiB per connection")
        print(f"RSS (with tracing): {(rss_after - rss_before) / n:.1f} KiB per connection\n")
        print(f"by line (top {top}), per connection:")
        print("\n".join(_top(after.compare_to(before, "lineno"), top, n)))
        print(f"\nby file (top {top}), per connection:")
        print("\n".join(_top(after.compare_to(before, "filename"), top, n)))
        print("\nobjects the garbage collector tracks, by type, per connection:")
        counts = Counter(types_after)
        counts.subtract(types_before)
        tracked = sum(counts.values())
        print(f"{tracked / n:10.2f}  all")
        for name, count in counts.most_common(top):
            print(f"{count / n:10.2f}  {name}")
        if frames > 1:
            print(f"\nby traceback (top {top}, innermost frame last), per connection:")
            print("\n".join(_tracebacks(after.compare_to(before, "traceback"), top, n)))
    finally:
        await asyncio.to_thread(gen.close)
        server.should_exit = True
        await asyncio.wait_for(serving, 60)
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--port", type=int, default=18473)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument(
        "--loop", choices=("uvloop", "asyncio"), default="uvloop", help="uvloop is what runs"
    )
    ap.add_argument(
        "--frames", type=int, default=1, help="frames kept per allocation (>1: by traceback too)"
    )
    args = ap.parse_args()
    raise_fd_limit()
    tracemalloc.start(args.frames)
    run = measure(args.connections, args.port, args.top, args.frames)
    if args.loop == "asyncio":
        asyncio.run(run)
    else:
        import uvloop

        uvloop.run(run)


if __name__ == "__main__":
    main()
