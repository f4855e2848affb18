"""Open-loop publish load: requests leave on a fixed schedule, answered or not.

A closed-loop generator such as wrk sends the next request only when an answer came back, so
a server that stalls is simply offered less load and the stall never shows in its latency
(coordinated omission). Here request ``i`` is due at ``t0 + i / rate`` whatever happened to
the earlier ones, and its latency runs from that scheduled time to the end of the answer, so
queueing anywhere (server, kernel, or this generator) counts against the figures.

To show that the generator is not the bottleneck, it reports its own CPU time for the run,
the send lag (how late each request actually left compared with its schedule) and how many
requests had to wait for a free keep-alive connection (the pool grows on demand up to
``--max-connections``, so that stays 0 unless the server holds that many requests).

Prints one JSON object on stdout. Example::

    .venv/bin/python bench/openloop.py --port 18431 --rate 1000 --duration 15
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

PATH = "/v1/events"
STATUS_OK = range(200, 300)
TICK_S = 0.001  # the scheduler's shortest sleep


@dataclass(slots=True)
class Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


@dataclass
class Pool:
    """Keep-alive connections to one server, opened on demand up to ``max_size``."""

    host: str
    port: int
    max_size: int
    idle: list[Conn] = field(default_factory=list)  # ready for a request
    size: int = 0  # open or opening
    opened: int = 0  # connections opened over the run
    waited: int = 0  # requests that found the pool full and waited
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)

    async def acquire(self) -> Conn:
        counted = False
        while True:
            while self.idle:
                conn = self.idle.pop()
                # The server closes keep-alive connections left idle (uvicorn: after 5 s);
                # its FIN has arrived by now, so such a connection is dropped, not reused.
                if conn.reader.at_eof() or conn.writer.is_closing():
                    self.discard(conn)
                    continue
                return conn
            if self.size < self.max_size:
                self.size += 1
                try:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                except BaseException:
                    self.size -= 1
                    self._wake()
                    raise
                self.opened += 1
                return Conn(reader, writer)
            if not counted:
                self.waited += 1
                counted = True
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            await waiter

    def release(self, conn: Conn) -> None:
        self.idle.append(conn)
        self._wake()

    def discard(self, conn: Conn) -> None:
        conn.writer.close()
        self.size -= 1
        self._wake()

    def _wake(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        for conn in self.idle:
            conn.writer.close()
        self.idle.clear()


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)  # seconds, scheduled -> answered
    scheduled: list[float] = field(default_factory=list)  # the same requests' schedule times
    lags: list[float] = field(default_factory=list)  # seconds, scheduled -> written
    statuses: Counter[int] = field(default_factory=Counter)
    timeouts: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    ok_in_window: int = 0  # 2xx answers that arrived before the schedule ended
    last_answer: float = 0.0


def event_json(i: int) -> str:
    return (
        f'{{"type":"bench.openloop.published","source":"bench","subject":"dev-{i % 100}",'
        f'"data":{{"n":{i},"switch":"on","level":42,"room":"kitchen"}}}}'
    )


def request_bytes(host: str, port: int, i: int, batch: int, api_key: str | None = None) -> bytes:
    if batch == 1:
        body = event_json(i)
    else:
        body = "[" + ",".join(event_json(i * batch + k) for k in range(batch)) + "]"
    data = body.encode()
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n"
        + (f"X-API-Key: {api_key}\r\n" if api_key else "")
        + "\r\n"
    )
    return head.encode() + data


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, keep-alive) after reading one whole response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length: int | None = None
    keep = True
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            keep = False
    if length is None:
        raise ValueError("response without Content-Length")
    await reader.readexactly(length)
    return status, keep


async def one(
    pool: Pool, payload: bytes, scheduled: float, window_end: float, limit_s: float, tally: Tally
) -> None:
    conn: Conn | None = None
    try:
        async with asyncio.timeout(limit_s):
            conn = await pool.acquire()
            tally.lags.append(time.perf_counter() - scheduled)
            conn.writer.write(payload)
            status, keep = await read_response(conn.reader)
    except TimeoutError:
        tally.timeouts += 1
        if conn is not None:
            pool.discard(conn)
        return
    except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
        tally.errors[type(error).__name__] += 1
        if conn is not None:
            pool.discard(conn)
        return
    answered = time.perf_counter()
    tally.latencies.append(answered - scheduled)
    tally.scheduled.append(scheduled)
    tally.statuses[status] += 1
    tally.last_answer = max(tally.last_answer, answered)
    if status in STATUS_OK and answered <= window_end:
        tally.ok_in_window += 1
    if keep:
        pool.release(conn)
    else:
        pool.discard(conn)


def percentiles_ms(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "p999": None, "max": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        index = min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))
        return round(ordered[index] * 1000, 3)

    return {
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "p999": rank(0.999),
        "max": round(ordered[-1] * 1000, 3),
    }


def timeline_ms(tally: Tally, t0: float, duration: float, step: float = 0.5) -> list[float]:
    """The worst latency of the requests scheduled in each ``step`` seconds: shows whether
    a high percentile comes from steady queueing or from a few stalls."""
    worst = [0.0] * (int(duration / step) + 1)
    for at, latency in zip(tally.scheduled, tally.latencies, strict=True):
        index = min(len(worst) - 1, max(0, int((at - t0) / step)))
        worst[index] = max(worst[index], latency)
    return [round(1000 * w, 1) for w in worst]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(args: argparse.Namespace) -> dict[str, Any]:
    pool = Pool(args.host, args.port, args.max_connections)
    warm = await asyncio.gather(*(pool.acquire() for _ in range(args.connections)))
    for conn in warm:
        pool.release(conn)
    tally = Tally()
    total = int(args.rate * args.duration)
    tasks: set[asyncio.Task[None]] = set()
    cpu_start = cpu_seconds()
    t0 = time.perf_counter() + 0.05
    window_end = t0 + args.duration
    sent = 0
    while sent < total:
        now = time.perf_counter()
        due = min(total, int((now - t0) * args.rate) + 1) if now >= t0 else 0
        while sent < due:
            payload = request_bytes(args.host, args.port, sent, args.batch, args.api_key)
            scheduled = t0 + sent / args.rate
            task = asyncio.create_task(
                one(pool, payload, scheduled, window_end, args.timeout, tally)
            )
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        # The event loop's timers have millisecond resolution: a shorter sleep returns at
        # once and the loop would spin, so wait at least TICK_S and send what fell due.
        delay = t0 + sent / args.rate - time.perf_counter()
        await asyncio.sleep(max(delay, TICK_S))
    schedule_done = time.perf_counter()
    if tasks:
        # Every request carries its own timeout, so this ends; the margin is a safety net.
        await asyncio.wait(tasks, timeout=args.timeout + 5)
    ended = time.perf_counter()
    cpu = cpu_seconds() - cpu_start
    await pool.close()
    ok = sum(n for status, n in tally.statuses.items() if status in STATUS_OK)
    return {
        "offered_rate": args.rate,
        "duration_s": args.duration,
        "batch": args.batch,
        "scheduled": total,
        "answered": len(tally.latencies),
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "timeouts": tally.timeouts,
        "errors": dict(tally.errors),
        "unfinished": sum(1 for t in tasks if not t.done()),
        "achieved_rate": round(tally.ok_in_window / args.duration, 1),
        "schedule_overrun_s": round(schedule_done - window_end, 4),
        "drain_s": round(ended - schedule_done, 3),
        "latency_ms": percentiles_ms(tally.latencies),
        "send_lag_ms": percentiles_ms(tally.lags),
        "worst_ms_per_half_second": timeline_ms(tally, t0, args.duration),
        "connections_opened": pool.opened,
        "waited_for_connection": pool.waited,
        "cpu_s": round(cpu, 3),
        "wall_s": round(ended - t0, 3),
        "cpu_percent": round(100 * cpu / (ended - t0), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of schedule")
    parser.add_argument("--batch", type=int, default=1, help="events per request")
    parser.add_argument("--api-key", help="sent as X-API-Key (a server that requires keys)")
    parser.add_argument("--connections", type=int, default=32, help="opened before the start")
    parser.add_argument("--max-connections", type=int, default=2048)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    args = parser.parse_args()
    if not 0 < args.rate <= 100_000 or not 0 < args.duration <= 600:
        parser.error("rate must be in (0, 100000] and duration in (0, 600]")
    try:
        import uvloop
    except ImportError:
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(run(args))
    result["event_loop"] = "uvloop" if loop_factory else "asyncio"
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
