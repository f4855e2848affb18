"""Open-loop publisher whose events carry their own publish time, for delivery latency.

Event ``i`` is due at ``t0 + i / rate`` whether or not earlier publishes were answered (a
closed-loop client would slow down with the server and hide its stalls). Each event carries
``data.pub_ns``: its scheduled send time on the monotonic clock, which the receiver
(bench/delivery/receiver.py) subtracts from its own receive time. The latency therefore runs
from the moment the publish was due to the moment the webhook arrived, and includes any lag
of this generator (reported as ``send_lag_ms``), the publish itself, the commit, dispatch and
the attempt.

Prints one JSON object on stdout: publishes scheduled and acknowledged, publish latency, send
lag and this process's CPU. Example::

    .venv/bin/python bench/delivery/publisher.py --port 18441 --rate 500 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

TICK_S = 0.001


@dataclass
class Tally:
    publish_ms: list[float] = field(default_factory=list)  # scheduled -> acknowledged
    lag_ms: list[float] = field(default_factory=list)  # scheduled -> written
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class Pool:
    """Keep-alive connections, opened on demand up to ``limit``."""

    host: str
    port: int
    limit: int
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)
    size: int = 0
    free: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def acquire(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with self.free:
            while True:
                while self.idle:
                    reader, writer = self.idle.pop()
                    if not reader.at_eof() and not writer.is_closing():
                        return reader, writer
                    writer.close()
                    self.size -= 1
                if self.size < self.limit:
                    self.size += 1
                    break
                await self.free.wait()
        try:
            return await asyncio.open_connection(self.host, self.port)
        except BaseException:
            async with self.free:
                self.size -= 1
                self.free.notify()
            raise

    async def release(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], keep: bool
    ) -> None:
        async with self.free:
            if keep:
                self.idle.append(conn)
            else:
                conn[1].close()
                self.size -= 1
            self.free.notify()

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


def request(host: str, port: int, i: int, pub_ns: int, event_type: str) -> bytes:
    body = (
        f'{{"type":"{event_type}","source":"bench","subject":"dev-{i % 100}",'
        f'"data":{{"n":{i},"pub_ns":{pub_ns},"switch":"on","level":42,"room":"kitchen"}}}}'
    ).encode()
    return (
        f"POST /v1/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, keep = 0, True
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            keep = False
    await reader.readexactly(length)
    return status, keep


async def one(pool: Pool, payload: bytes, scheduled_ns: int, timeout: float, t: Tally) -> None:
    conn = None
    try:
        async with asyncio.timeout(timeout):
            conn = await pool.acquire()
            t.lag_ms.append((time.monotonic_ns() - scheduled_ns) / 1e6)
            conn[1].write(payload)
            status, keep = await read_response(conn[0])
    except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError) as error:
        t.errors[type(error).__name__] += 1
        if conn is not None:
            await pool.release(conn, keep=False)
        return
    t.publish_ms.append((time.monotonic_ns() - scheduled_ns) / 1e6)
    t.statuses[status] += 1
    await pool.release(conn, keep)


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return round(
            ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))], 3
        )

    return {"p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99), "max": round(ordered[-1], 3)}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(args: argparse.Namespace) -> dict[str, Any]:
    pool = Pool(args.host, args.port, args.max_connections)
    tally = Tally()
    total = int(args.rate * args.duration)
    tasks: set[asyncio.Task[None]] = set()
    cpu0 = cpu_seconds()
    step_ns = int(1e9 / args.rate)
    t0 = time.monotonic_ns() + 50_000_000
    sent = 0
    while sent < total:
        now = time.monotonic_ns()
        due = min(total, (now - t0) // step_ns + 1) if now >= t0 else 0
        while sent < due:
            scheduled = t0 + sent * step_ns
            payload = request(args.host, args.port, args.first + sent, scheduled, args.type)
            task = asyncio.create_task(one(pool, payload, scheduled, args.timeout, tally))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        delay = (t0 + sent * step_ns - time.monotonic_ns()) / 1e9
        await asyncio.sleep(max(delay, TICK_S))
    if tasks:
        await asyncio.wait(tasks, timeout=args.timeout + 5)  # each one is bounded already
    wall = (time.monotonic_ns() - t0) / 1e9
    cpu = cpu_seconds() - cpu0
    pool.close()
    ok = sum(n for status, n in tally.statuses.items() if 200 <= status < 300)
    return {
        "offered_rate": args.rate,
        "duration_s": args.duration,
        "scheduled": total,
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "errors": dict(tally.errors),
        "publish_latency_ms": percentiles(tally.publish_ms),
        "send_lag_ms": percentiles(tally.lag_ms),
        "connections": pool.size,
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "cpu_percent": round(100 * cpu / wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="events per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds of schedule")
    parser.add_argument("--first", type=int, default=0, help="data.n of the first event")
    parser.add_argument("--type", default="bench.delivery.published", help="event type")
    parser.add_argument("--max-connections", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per publish")
    args = parser.parse_args()
    if not 0 < args.rate <= 50_000 or not 0 < args.duration <= 600:
        parser.error("rate must be in (0, 50000] and duration in (0, 600]")
    try:
        import uvloop
    except ImportError:
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(run(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
