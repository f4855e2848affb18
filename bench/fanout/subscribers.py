"""The subscriber side of the fan-out benchmark: many SSE connections in one process.

A load generator that must not be the bottleneck: each connection is an asyncio protocol on
a raw socket (uvloop when installed) that sends one HTTP/1.1 GET and then only counts. A read
is cut at its last complete frame (the rest waits for the next read) and the events in it are
counted with one C-level ``bytes.count`` of the publish stamp ``"bt":`` that every published
payload carries. Only while latency is recorded are the stamps parsed (one ``re.findall`` per
read): publish-to-receive latency is the read's arrival time minus the stamp, the scheduled
send time in microseconds since 1970 written by the publisher on the same machine.

Under load a read holds many frames, so the cost per event stays far below the server's. The
process's CPU is measured from outside and reported beside the servers'.

A worker is driven by run.py over a pipe (``serve``) and publishes its running totals in shared
memory, so that the publisher can hold its pace to what the slowest subscriber has received.
Every wait is bounded, and a worker exits on its own at its deadline or when the pipe closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import resource
import time
from array import array
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any, cast

STAMP = b'"bt":'  # the publish stamp in every benchmark payload
STAMP_RE = re.compile(rb'"bt":(\d+)')
FINE_US, FINE_BUCKETS = 10, 10_000  # 10 us buckets up to 100 ms
COARSE_US, COARSE_BUCKETS = 1_000, 60_000  # then 1 ms buckets up to 60 s
SHARED_FIELDS = 5  # per worker, shared: events received, slowest subscriber, open, bytes, reads
GONE = 1 << 62  # the count of a connection that failed or was lost: left out of the minimum


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard limit (thousands of sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Histogram:
    """Latency counts: 10 us resolution below 100 ms, 1 ms up to 60 s, the rest clamped."""

    def __init__(self) -> None:
        self.fine = array("q", bytes(8 * FINE_BUCKETS))
        self.coarse = array("q", bytes(8 * COARSE_BUCKETS))
        self.count = 0
        self.max_us = 0

    def add(self, latency_us: int) -> None:
        if latency_us < FINE_US * FINE_BUCKETS:
            self.fine[max(0, latency_us) // FINE_US] += 1
        else:
            self.coarse[min(latency_us // COARSE_US, COARSE_BUCKETS - 1)] += 1
        self.count += 1
        if latency_us > self.max_us:
            self.max_us = latency_us

    def export(self) -> dict[str, Any]:
        """Only the non-empty buckets, as {upper bound in us: count}."""
        buckets: dict[int, int] = {}
        for i, n in enumerate(self.fine):
            if n:
                buckets[(i + 1) * FINE_US] = n
        for i, n in enumerate(self.coarse):
            if n:
                buckets[(i + 1) * COARSE_US] = n
        return {"count": self.count, "max_us": self.max_us, "buckets": buckets}


def merge_percentiles(
    exports: Sequence[dict[str, Any]], quantiles: Sequence[float], expected: int
) -> dict[str, Any]:
    """Percentiles (ms, bucket upper bounds) of several workers' histograms merged.

    ``expected`` receipts make the population: the ones that never arrived count as slower
    than any that did, and a percentile that falls among them is None (not measured).
    """
    merged: dict[int, int] = {}
    for export in exports:
        for bound, n in export["buckets"].items():
            merged[int(bound)] = merged.get(int(bound), 0) + n
    received = sum(merged.values())
    population = max(expected, received)
    out: dict[str, Any] = {}
    bounds = sorted(merged)
    for q in quantiles:
        key, rank, seen = f"p{q * 100:g}", q * population, 0
        out[key] = None
        for bound in bounds:
            seen += merged[bound]
            if seen >= rank:
                out[key] = round(bound / 1000, 2)
                break
    out["max"] = round(max((e["max_us"] for e in exports), default=0) / 1000, 2)
    out["missing"] = population - received
    return out


class Stats:
    """What one worker's connections have received (updated from data_received)."""

    def __init__(self, count: int) -> None:
        self.counts = [0] * count  # events received, per connection
        self.total = 0  # events received, all connections
        self.bytes = 0  # body bytes received, all connections
        self.reads = 0  # data_received calls
        self.window: tuple[int, int] | None = None  # record latency for stamps in [lo, hi]
        self.hist = Histogram()
        self.in_window = 0  # receipts of stamps inside the window
        self.lost_connections = 0  # closed by the server or reset
        self.errors: list[str] = []


class Subscriber(asyncio.Protocol):
    """One SSE connection that counts frames and, when asked, records latency."""

    def __init__(self, index: int, stats: Stats, request: bytes) -> None:
        self.index = index
        self.stats = stats
        self.request = request
        self.head: bytes | None = b""  # the response head until it is complete
        self.tail = b""  # an incomplete frame, completed by the next read
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        stats = self.stats
        stats.reads += 1
        stats.bytes += len(data)
        if self.head is not None:
            data = self._read_head(data)
            if not data:
                return
        if self.tail:
            data = self.tail + data
        end = data.rfind(b"\n\n")
        if end < 0:
            self.tail = data
            return
        self.tail = data[end + 2 :]
        if stats.window is None:
            n = data.count(STAMP, 0, end)
        else:
            now = time.time_ns() // 1000
            lo, hi = stats.window
            stamps = STAMP_RE.findall(data, 0, end)
            n = len(stamps)
            hist = stats.hist
            for raw in stamps:
                sent = int(raw)
                if lo <= sent <= hi:
                    hist.add(now - sent)
                    stats.in_window += 1
        if n:
            stats.counts[self.index] += n
            stats.total += n
        if not self.ready.done():  # the first frame (`connected`, or nchan's comment)
            self.ready.set_result(None)

    def _read_head(self, data: bytes) -> bytes:
        head = self.head + data if self.head else data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            self.head = head
            return b""
        self.head = None
        status = head[: head.find(b"\r\n")]
        if b" 200 " not in status + b" ":
            self._fail(f"status {status.decode(errors='replace')}")
            return b""
        return head[end + 4 :]

    def _fail(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        if len(self.stats.errors) < 20:
            self.stats.errors.append(why)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closing:
            return
        self.closing = True
        self.stats.counts[self.index] = GONE
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed during connect: {exc}"))
        elif self.ready.exception() is None:  # it was open: the server closed it
            self.stats.lost_connections += 1

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()


class Worker:
    """A set of subscribers in this process, and the commands run.py sends it."""

    def __init__(self, slot: int, shared: Any) -> None:
        self.slot = slot  # this worker's fields in the shared array
        self.shared = shared  # RawArray("q"): SHARED_FIELDS per worker
        self.subs: list[Subscriber] = []
        self.stats = Stats(0)

    async def connect(
        self, host: str, port: int, path: str, count: int, concurrency: int, timeout: float
    ) -> dict[str, Any]:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
            "Cache-Control: no-cache\r\nUser-Agent: fanout-bench\r\n\r\n"
        ).encode()
        self.stats = Stats(count)
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(concurrency)
        began = time.monotonic()
        failures: list[str] = []

        async def open_one(index: int) -> None:
            sub: Subscriber | None = None
            async with gate:
                try:
                    async with asyncio.timeout(timeout):
                        _, sub = await loop.create_connection(
                            lambda: Subscriber(index, self.stats, request), host, port
                        )
                        await sub.ready
                        self.subs.append(sub)
                        return
                except (OSError, TimeoutError) as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                self.stats.counts[index] = GONE
                if sub is not None:
                    sub.close()

        await asyncio.gather(*(open_one(i) for i in range(count)))
        self.publish_shared()
        return {
            "requested": count,
            "open": count - len(failures),
            "failures": len(failures),
            "failure_examples": failures[:5],
            "connect_s": round(time.monotonic() - began, 3),
        }

    def publish_shared(self) -> None:
        stats, base = self.stats, self.slot * SHARED_FIELDS
        self.shared[base] = stats.total
        slowest = min(stats.counts) if stats.counts else 0
        self.shared[base + 1] = 0 if slowest == GONE else slowest
        self.shared[base + 2] = len(self.subs) - stats.lost_connections
        self.shared[base + 3] = stats.bytes
        self.shared[base + 4] = stats.reads

    async def keep_shared(self, period_s: float) -> None:
        while True:
            self.publish_shared()
            await asyncio.sleep(period_s)

    def report(self) -> dict[str, Any]:
        stats = self.stats
        counts = [n for n in stats.counts if n != GONE] or [0]
        return {
            "total": stats.total,
            "bytes": stats.bytes,
            "reads": stats.reads,
            "min": min(counts),
            "max": max(counts),
            "in_window": stats.in_window,
            "hist": stats.hist.export(),
            "lost_connections": stats.lost_connections,
            "errors": stats.errors,
        }

    def close_all(self) -> None:
        for sub in self.subs:
            sub.close()
        self.subs.clear()

    def handle(self, command: tuple[Any, ...]) -> Any:
        """The synchronous commands; ``connect`` is awaited by the caller."""
        name = command[0]
        if name == "latency":  # record latency of stamps in [lo, hi] (us), from now on
            self.stats.window = (int(command[1]), int(command[2]))
            self.stats.hist = Histogram()
            self.stats.in_window = 0
            return "ok"
        if name == "count":  # only count from now on
            self.stats.window = None
            return "ok"
        if name == "report":
            return self.report()
        if name == "close":
            self.close_all()
            return "ok"
        raise ValueError(f"unknown command {name!r}")


async def _serve(pipe: Connection, slot: int, shared: Any, deadline_s: float) -> None:
    worker = Worker(slot, shared)
    keeper = asyncio.create_task(worker.keep_shared(0.005))
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[Any, ...] | None] = asyncio.Queue()

    def readable() -> None:
        try:
            inbox.put_nowait(pipe.recv())
        except (EOFError, OSError):
            loop.remove_reader(pipe.fileno())
            inbox.put_nowait(None)

    loop.add_reader(pipe.fileno(), readable)
    try:
        async with asyncio.timeout(deadline_s):
            while True:
                command = await inbox.get()
                if command is None or command[0] == "exit":
                    return
                if command[0] == "connect":
                    pipe.send(await worker.connect(*command[1:]))
                    continue
                worker.publish_shared()
                pipe.send(worker.handle(command))
    except TimeoutError:
        pass
    finally:
        keeper.cancel()
        worker.close_all()
        await asyncio.sleep(0.1)  # let the transports close


def serve(pipe: Connection, slot: int, shared: Any, deadline_s: float) -> None:
    """Process entry point: answer commands on ``pipe`` until told to exit or the deadline."""
    raise_fd_limit()
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(pipe, slot, shared, deadline_s))
    else:
        uvloop.run(_serve(pipe, slot, shared, deadline_s))
    with contextlib.suppress(OSError):
        pipe.close()
