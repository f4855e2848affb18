"""The publisher side of the fan-out benchmark: events stamped with their send time.

Every payload carries ``"bt": <microseconds since 1970>``, the time the event was meant to
leave (its scheduled time in the open loop), which the subscribers subtract from the time it
arrives. Two ways to publish:

* ``open_loop``: a fixed rate whatever happens; an event waits for a free connection rather
  than for the previous answer, and a late send shows in the latency because the stamp is the
  scheduled time.
* ``flow_controlled``: as fast as the subscribers keep up. A lane publishes a burst of
  ``batch`` events (Tidings: one JSON array; nchan, which has no batch publish: ``batch``
  pipelined POSTs) only while the slowest subscriber is less than ``window`` events behind
  what was published, so neither server has to buffer an ever growing backlog.

Both targets get the same payload shape: Tidings wraps ``data`` in its envelope, so nchan is
sent an envelope of the same fields (id, seq, type, source, times, trace id...) and the SSE
frames on the wire are of about the same size. The client is a raw keep-alive HTTP/1.1
connection on asyncio streams, cheap enough to publish thousands of requests per second.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

IDLE_S = 2.0  # a pooled connection idle longer than this is replaced before use


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True)
class Target:
    """Where and how to publish: Tidings (JSON arrays) or nchan (one message per POST)."""

    kind: str  # "tidings" or "nchan"
    host: str
    port: int
    channel: str = "bench"

    def requests(self, first_seq: int, stamps: list[int]) -> list[bytes]:
        """The HTTP requests that publish one event per stamp."""
        if self.kind == "tidings":
            events = [{"type": "bench.tick", "source": "bench", "data": {"bt": s}} for s in stamps]
            body = json.dumps(events[0] if len(events) == 1 else events, separators=(",", ":"))
            return [self._post("/v1/events", body.encode())]
        return [
            self._post(f"/pub?ch={self.channel}", _envelope(first_seq + i, stamp))
            for i, stamp in enumerate(stamps)
        ]

    def _post(self, path: str, body: bytes) -> bytes:
        return (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body


def _iso(us: int) -> str:
    moment = datetime.fromtimestamp(us / 1e6, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _envelope(seq: int, stamp: int) -> bytes:
    """What Tidings would put on the wire for the same event, for nchan to carry."""
    iso = _iso(stamp)
    event = {
        "id": str(uuid.uuid4()),
        "seq": seq,
        "type": "bench.tick",
        "source": "bench",
        "subject": None,
        "time": iso,
        "received_at": iso,
        "trace_id": uuid.uuid4().hex,
        "idempotency_key": None,
        "data": {"bt": stamp},
        "metadata": {},
    }
    return json.dumps(event, separators=(",", ":")).encode()


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; requests may be pipelined."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.last_used = time.monotonic()

    @property
    def stale(self) -> bool:
        """Closed, or idle long enough that the server may be closing it (uvicorn: after 5 s)."""
        return (
            self.writer.is_closing()
            or self.reader.at_eof()
            or time.monotonic() - self.last_used > IDLE_S
        )

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def exchange(self, requests: list[bytes], timeout: float) -> list[int]:
        """Send the requests back to back, then read one answer each; their status codes."""
        self.last_used = time.monotonic()
        self.writer.write(b"".join(requests))
        statuses: list[int] = []
        async with asyncio.timeout(timeout):
            await self.writer.drain()
            for _ in requests:
                head = await self.reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                statuses.append(int(lines[0].split()[1]))
                length = 0
                for line in lines[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await self.reader.readexactly(length)
        self.last_used = time.monotonic()
        return statuses

    def close(self) -> None:
        self.writer.close()


@dataclass
class PublishStats:
    """Cumulative over one server run: the subscribers' totals are compared with ``ok``."""

    ok: int = 0  # events acknowledged (2xx)
    failed: int = 0  # events whose request failed or was refused
    requests: int = 0
    in_flight: int = 0  # events sent, not yet answered
    max_lag_ms: float = 0.0  # open loop: the latest a request left after its scheduled time
    acks_us: list[int] = field(default_factory=list)  # open loop: scheduled send to 2xx answer
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def record(self, statuses: list[int], per_request: int) -> None:
        self.requests += len(statuses)
        for status in statuses:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                self.ok += per_request
            else:
                self.failed += per_request

    def fail(self, events: int, exc: BaseException) -> None:
        self.failed += events
        if len(self.errors) < 10:
            self.errors.append(f"{type(exc).__name__}: {exc}")


class Publisher:
    """Publishes to one target over a small pool of keep-alive connections."""

    def __init__(self, target: Target, connections: int = 8, timeout: float = 30.0) -> None:
        self.target = target
        self.size = connections
        self.timeout = timeout
        self.pool: asyncio.Queue[HttpConnection] = asyncio.Queue()
        self.stats = PublishStats()
        self.seq = 0  # events handed out so far (nchan's envelope seq)

    async def open(self) -> None:
        for _ in range(self.size):
            self.pool.put_nowait(await HttpConnection.open(self.target.host, self.target.port))

    def close(self) -> None:
        while not self.pool.empty():
            self.pool.get_nowait().close()

    async def publish(self, stamps: list[int]) -> None:
        """Publish one event per stamp in one burst on one connection of the pool."""
        first, self.seq = self.seq, self.seq + len(stamps)
        requests = self.target.requests(first, stamps)
        per_request = len(stamps) // len(requests)
        self.stats.in_flight += len(stamps)
        conn = await self.pool.get()
        try:
            if conn.stale:  # never race the server's keep-alive timeout
                conn.close()
                conn = await HttpConnection.open(self.target.host, self.target.port)
            statuses = await conn.exchange(requests, self.timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            self.stats.fail(len(stamps), exc)
            conn.close()  # its answers are out of step now: the next user reopens it
        except asyncio.CancelledError:
            self.stats.fail(len(stamps), TimeoutError("cancelled: no answer in time"))
            conn.close()
            raise
        else:
            self.stats.record(statuses, per_request)
        finally:
            self.stats.in_flight -= len(stamps)
            self.pool.put_nowait(conn)

    async def open_loop(self, rate: float, duration: float) -> dict[str, Any]:
        """``rate`` single-event publishes per second for ``duration`` seconds, on schedule."""
        loop = asyncio.get_running_loop()
        start_mono, start_wall = loop.time(), now_us()
        total = int(rate * duration)
        tasks: set[asyncio.Task[None]] = set()
        for k in range(total):
            due = start_mono + k / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lag = loop.time() - due
            self.stats.max_lag_ms = max(self.stats.max_lag_ms, round(1000 * lag, 3))
            task = asyncio.create_task(self._timed([start_wall + round(1e6 * k / rate)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        unanswered = 0
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.timeout)
            for task in pending:  # the server is hopelessly behind: stop waiting for it
                task.cancel()
            unanswered = len(pending)
            await asyncio.gather(*pending, return_exceptions=True)
        return {
            "scheduled": total,
            "first_stamp_us": start_wall,
            "rate": rate,
            "unanswered": unanswered,
        }

    async def _timed(self, stamps: list[int]) -> None:
        ok = self.stats.ok
        await self.publish(stamps)
        if self.stats.ok > ok:
            self.stats.acks_us.append(now_us() - stamps[0])

    async def flow_controlled(
        self,
        batch: int,
        window: int,
        duration: float,
        slowest: Callable[[], int],
        lanes: int = 2,
    ) -> dict[str, Any]:
        """Publish bursts of ``batch`` while the slowest subscriber is within ``window``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + duration
        waits = 0

        async def lane() -> None:
            nonlocal waits
            while loop.time() < deadline:
                issued = self.stats.ok + self.stats.in_flight
                if issued + batch - slowest() > window:
                    waits += 1
                    await asyncio.sleep(0.001)
                    continue
                stamp = now_us()
                await self.publish([stamp] * batch)

        await asyncio.gather(*(lane() for _ in range(lanes)))
        return {"batch": batch, "window": window, "lanes": lanes, "waits": waits}

    async def drain(self, slowest: Callable[[], int], timeout: float, before: int = 0) -> float:
        """Wait until the slowest subscriber has every event acknowledged since it connected
        (``before`` were acknowledged earlier); seconds waited, ``timeout`` when it did not."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        while slowest() < self.stats.ok - before:
            if loop.time() - began >= timeout:
                return timeout
            await asyncio.sleep(0.005)
        return round(loop.time() - began, 3)
