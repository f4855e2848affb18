"""CPU per webhook request of the HTTP client alone, against the benchmark's receiver.

The delivery profile shows the event loop spending most of its time inside httpx2/httpcore2.
This measures that part on its own: the same POST (a ~450-byte signed-looking body and the
headers Tidings sends) made ``--requests`` times by ``--workers`` concurrent tasks, in one
process on uvloop (as the server runs), with

  httpx2-stream  what tidings/delivery/sender.py does: build_request, send(stream=True),
                 aiter_bytes, aclose
  httpx2-post    client.post(), the body read whole
  raw            a minimal keep-alive HTTP/1.1 client on asyncio.Protocol: the floor, what
                 any client must pay for the socket calls and a little parsing

and prints CPU microseconds per request (this process only) and requests/s. The receiver runs
in its own process (started here, stopped at the end).

    .venv/bin/python bench/delivery/client_cost.py --requests 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import common
import httpx2

BODY = json.dumps(
    {
        "event": {
            "id": "01a21320-d067-7408-a0ba-f513534d55b8",
            "seq": 1,
            "type": "bench.delivery.batch",
            "source": "bench",
            "subject": "dev-1",
            "time": "2026-11-25T14:34:07.303Z",
            "received_at": "2026-11-25T14:34:07.303Z",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "data": {"n": 1, "pub_ns": 1, "switch": "on", "level": 42},
            "metadata": {},
        },
        "delivered_at": "2026-11-25T14:34:07.310Z",
    }
).encode()


def headers() -> dict[str, str]:
    return {
        "webhook-id": "msg_" + os.urandom(16).hex(),
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
        "X-Signature": "sha256=" + os.urandom(32).hex(),
        "Content-Type": "application/json",
        "User-Agent": "tidings/0.1.0",
        "traceparent": f"00-4bf92f3577b34da6a3ce929d0e0e4736-{os.urandom(8).hex()}-01",
    }


class RawConnection(asyncio.Protocol):
    """One keep-alive connection; one request at a time; Content-Length answers only."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer.extend(data)
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        start = head.find(b"content-length:")
        stop = head.find(b"\r\n", start)
        length = int(head[start + 15 : stop if stop >= 0 else len(head)]) if start >= 0 else 0
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[: end + 4 + length]
        self.waiter.set_result(int(head[9:12]))

    async def post(self, target: bytes, head_lines: bytes, body: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(
            b"POST %s HTTP/1.1\r\n%scontent-length: %d\r\n\r\n%s"
            % (target, head_lines, len(body), body)
        )
        status = await self.waiter
        self.waiter = None
        return status


async def measure(
    name: str, workers: int, requests: int, one: Callable[[], Awaitable[int]]
) -> dict[str, Any]:
    remaining = requests
    bad = 0

    async def worker() -> None:
        nonlocal remaining, bad
        while remaining > 0:
            remaining -= 1
            if await one() != 200:
                bad += 1

    async with asyncio.timeout(120):
        await asyncio.gather(*(worker() for _ in range(workers)))  # warm-up round
    remaining = requests
    cpu, wall = time.process_time(), time.perf_counter()
    async with asyncio.timeout(120):
        await asyncio.gather(*(worker() for _ in range(workers)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    result = {
        "client": name,
        "requests": requests,
        "errors": bad,
        "cpu_us_per_request": round(1e6 * cpu / requests, 1),
        "requests_per_s": round(requests / wall, 1),
        "cpu_percent": round(100 * cpu / wall, 1),
    }
    print(json.dumps(result), flush=True)
    return result


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    url = f"http://{common.HOST}:{args.receiver_port}/ep/0"
    limits = httpx2.Limits(max_connections=args.pool, max_keepalive_connections=args.pool)
    results = []
    async with httpx2.AsyncClient(
        timeout=httpx2.Timeout(10.0), follow_redirects=False, limits=limits, trust_env=False
    ) as client:

        async def stream() -> int:
            request = client.build_request("POST", url, content=BODY, headers=headers())
            response = await client.send(request, stream=True)
            try:
                async for _ in response.aiter_bytes():
                    pass
            finally:
                await response.aclose()
            return response.status_code

        async def post() -> int:
            return (await client.post(url, content=BODY, headers=headers())).status_code

        results.append(await measure("httpx2-stream", args.workers, args.requests, stream))
        results.append(await measure("httpx2-post", args.workers, args.requests, post))

    loop = asyncio.get_running_loop()
    idle: list[RawConnection] = []
    for _ in range(args.workers):
        _, protocol = await loop.create_connection(RawConnection, common.HOST, args.receiver_port)
        idle.append(protocol)
    host = f"host: {common.HOST}:{args.receiver_port}\r\n".encode()

    async def raw() -> int:
        conn = idle.pop()
        try:
            lines = host + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers().items())
            return await conn.post(b"/ep/0", lines, BODY)
        finally:
            idle.append(conn)

    results.append(await measure("raw", args.workers, args.requests, raw))
    for conn in idle:
        assert conn.transport is not None
        conn.transport.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=16, help="concurrent requests")
    parser.add_argument("--pool", type=int, default=32, help="httpx2 max_connections")
    parser.add_argument("--receiver-port", type=int, default=18442)
    args = parser.parse_args()
    if not 100 <= args.requests <= 1_000_000:
        parser.error("requests must be 100-1,000,000")
    import uvloop

    with (
        tempfile.TemporaryDirectory(prefix="tidings-client-cost-") as tmp,
        common.processes(Path(tmp), 18449, args.receiver_port) as procs,
    ):
        procs.start_receiver(lifetime_s=600)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run(args))
        received = common.http_call(args.receiver_port, "GET", "/_stats")[1]
    print(json.dumps({"receiver_cpu_s": received["cpu_s"], "received": received["total"]}))


if __name__ == "__main__":
    main()
