"""The webhook receiver of the delivery benchmark: answers as cheaply as it can and counts.

A raw HTTP/1.1 server on ``asyncio.Protocol`` (uvloop when installed), one process, no
framework: the point is that Tidings, not the receiver, is what runs out. It reports its own
CPU so that a reader can check.

Per request it records the monotonic receive time and, when the body carries
``"pub_ns":<int>`` (the publisher's scheduled send time, ``time.monotonic_ns()``; the
monotonic clock is one clock for every process on Linux), the publish-to-delivery latency. It
counts requests and distinct ``webhook-id`` values per path (a difference is a delivery made
twice, which at-least-once allows) and checks the ``webhook-signature`` of the first request
of every path against ``--secret``.

Paths:

* anything else      200, counted (``/ep/3`` and so on: one path per endpoint)
* ``/dead/...``      503, counted: a receiver that is down behind a proxy
* ``/hang/...``      never answered (the connection stays open): a receiver that hangs
* ``GET /_stats``    JSON: per path counts, first and last receive time, latency percentiles,
                     this process's CPU seconds
* ``POST /_reset``   forget everything counted so far

Example::

    .venv/bin/python bench/delivery/receiver.py --port 18442 --secret whsec_...
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import resource
import signal
import time
from dataclasses import dataclass, field
from typing import Any, cast

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
UNAVAILABLE = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
MAX_REQUEST = 16 * 1024 * 1024  # a connection sending more than this without a request ends
PUB_MARK = b'"pub_ns":'
SECRET_PREFIX = "whsec_"


@dataclass
class PathStats:
    count: int = 0
    ids: set[bytes] = field(default_factory=set)
    first_ns: int = 0
    last_ns: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    signature_checked: bool = False


@dataclass
class State:
    key: bytes | None  # HMAC key of the endpoints' shared secret, when one was given
    paths: dict[str, PathStats] = field(default_factory=dict)
    signatures_ok: int = 0
    signatures_bad: int = 0
    hung: list[asyncio.Transport] = field(default_factory=list)

    def reset(self) -> None:
        self.paths.clear()
        self.signatures_ok = self.signatures_bad = 0


def secret_key(secret: str) -> bytes:
    """The Standard Webhooks key: a ``whsec_`` secret's base64-decoded bytes, else UTF-8."""
    if secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :]
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    return secret.encode()


def header(lower: bytes, head: bytes, name: bytes) -> bytes | None:
    """One header's value: found by its lower-case ``name`` in ``lower`` (the head in lower
    case), taken from ``head`` as sent (a base64 signature is case-sensitive)."""
    start = lower.find(b"\r\n" + name + b":")
    if start < 0:
        return None
    start += len(name) + 3
    end = lower.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip()


def percentiles_ms(values: list[int]) -> dict[str, float | None]:
    if not values:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "p999": None, "max": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        index = min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))
        return round(ordered[index] / 1e6, 3)

    return {
        "count": len(ordered),
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "p999": rank(0.999),
        "max": round(ordered[-1] / 1e6, 3),
    }


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stats_json(state: State) -> bytes:
    paths: dict[str, Any] = {}
    for path, s in state.paths.items():
        paths[path] = {
            "count": s.count,
            "unique": len(s.ids),
            "first_ns": s.first_ns,
            "last_ns": s.last_ns,
            "latency_ms": percentiles_ms(s.latencies_ns),
        }
    return json.dumps(
        {
            "paths": paths,
            "total": sum(s.count for s in state.paths.values()),
            "signatures_ok": state.signatures_ok,
            "signatures_bad": state.signatures_bad,
            "cpu_s": round(cpu_seconds(), 3),
            "now_ns": time.monotonic_ns(),
        }
    ).encode()


class Receiver(asyncio.Protocol):
    def __init__(self, state: State) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer.extend(data)
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_REQUEST:
                    self.transport.close()
                return
            head = bytes(self.buffer[:end])
            lower = head.lower()
            length_value = header(lower, head, b"content-length")
            length = int(length_value) if length_value else 0
            if len(self.buffer) < end + 4 + length:
                return  # the body is still coming
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self.handle(lower, head, body)

    def handle(self, lower: bytes, head: bytes, body: bytes) -> None:
        now = time.monotonic_ns()
        assert self.transport is not None
        line_end = lower.find(b"\r\n")
        method, _, rest = lower[: line_end if line_end >= 0 else len(lower)].partition(b" ")
        path = rest.partition(b" ")[0].decode()
        if path.startswith("/_"):
            self.control(method, path)
            return
        stats = self.state.paths.get(path)
        if stats is None:
            stats = self.state.paths[path] = PathStats(first_ns=now)
        stats.count += 1
        stats.last_ns = now
        message_id = header(lower, head, b"webhook-id")
        if message_id is not None:
            stats.ids.add(message_id)
        mark = body.find(PUB_MARK)
        if mark >= 0:
            start = mark + len(PUB_MARK)
            stop = start
            while stop < len(body) and 48 <= body[stop] <= 57:
                stop += 1
            if stop > start:
                stats.latencies_ns.append(now - int(body[start:stop]))
        if not stats.signature_checked and self.state.key is not None:
            stats.signature_checked = True
            self.check_signature(lower, head, body, message_id)
        if path.startswith("/hang"):
            self.state.hung.append(self.transport)  # held open, never answered
            self.transport = None
            return
        self.transport.write(UNAVAILABLE if path.startswith("/dead") else OK)

    def check_signature(
        self, lower: bytes, head: bytes, body: bytes, message_id: bytes | None
    ) -> None:
        assert self.state.key is not None
        timestamp = header(lower, head, b"webhook-timestamp")
        signature = header(lower, head, b"webhook-signature")
        if message_id is None or timestamp is None or signature is None:
            self.state.signatures_bad += 1
            return
        signed = message_id + b"." + timestamp + b"." + body
        expected = base64.b64encode(hmac.new(self.state.key, signed, hashlib.sha256).digest())
        given = [part.partition(b",")[2] for part in signature.split()]
        if any(hmac.compare_digest(g, expected) for g in given):
            self.state.signatures_ok += 1
        else:
            self.state.signatures_bad += 1

    def control(self, method: bytes, path: str) -> None:
        assert self.transport is not None
        if path == "/_stats":
            body = stats_json(self.state)
        elif path == "/_reset" and method == b"post":
            self.state.reset()
            body = b"{}"
        else:
            self.transport.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            return
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (len(body), body)
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(args: argparse.Namespace) -> None:
    state = State(secret_key(args.secret) if args.secret else None)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Receiver(state), args.host, args.port, backlog=1024, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on {args.host}:{args.port}", flush=True)
    # Bounded: a receiver left behind by a crashed harness ends by itself.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=args.lifetime)
    server.close()
    for transport in state.hung:
        transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", help="the endpoints' secret, to check signatures")
    parser.add_argument(
        "--lifetime", type=float, default=3600.0, help="seconds before it exits by itself"
    )
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(args))


if __name__ == "__main__":
    main()
