"""The auth middleware's own CPU per request, in process, without a network or a server.

The end-to-end run (bench/auth/run.py) measures whole-server CPU on a shared machine, where
noise between runs is larger than the middleware's cost. This measures the middleware alone:
the same request scope sent through ``AuthMiddleware`` around an app that does nothing, with
auth off and with a valid key (publish and stream requests), and compares it with the
server's CPU per publish and per delivered stream event from BENCHMARKS.md.

    .venv/bin/python bench/auth/middleware_cost.py
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tidings.auth.audit import Auditor
from tidings.auth.keys import NewKey
from tidings.auth.middleware import AuthMiddleware
from tidings.auth.service import AuthService
from tidings.envelope import Limits
from tidings.publish import Publisher
from tidings.settings import Settings
from tidings.store.auth import ApiKey
from tidings.streams.registry import StreamRegistry
from tidings.testing import MemoryAuthStore, MemoryStore

N = 200_000


async def _noop(scope: Any, receive: Any, send: Any) -> None:
    # a request that got here was let through; with auth on, as its key's principal
    assert scope.get("tidings.principal") is not None or scope.get("bench.auth") is False


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


def scope(path: str, method: str, key: str | None) -> dict[str, Any]:
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"bench"),
        (b"content-type", b"application/json"),
        (b"content-length", b"120"),
    ]
    if key:
        headers.append((b"x-api-key", key.encode()))
    return {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "extensions": {},
        "bench.auth": key is not None,
    }


async def measure(auth: bool, path: str, method: str) -> float:
    settings = Settings(auth=auth, _env_file=None)  # type: ignore[call-arg]
    store = MemoryAuthStore()
    new = NewKey.generate()
    key = ApiKey(new.id, "default", "bench", new.prefix, new.hash, ("publish", "subscribe"),
                 None, 1_000_000, 0)  # fmt: skip
    await store.create_key(key)
    auditor = Auditor(Publisher(MemoryStore()), Limits(), enabled=auth)
    service = AuthService(settings, store, auditor, StreamRegistry())
    await service.reload()
    middleware = AuthMiddleware(_noop, service)
    template = scope(path, method, new.secret if auth else None)
    for _ in range(1000):  # warm up
        await middleware(dict(template), _receive, _send)
    started = time.process_time()
    for _ in range(N):
        await middleware(dict(template), _receive, _send)
    return (time.process_time() - started) / N * 1e6


async def baseline() -> float:
    template = scope("/v1/events", "POST", None)
    started = time.process_time()
    for _ in range(N):
        await _noop(dict(template), _receive, _send)
    return (time.process_time() - started) / N * 1e6


async def main() -> None:
    base = await baseline()
    rows = [
        ("publish (POST /v1/events)", "/v1/events", "POST"),
        ("stream (GET /v1/events/stream)", "/v1/events/stream", "GET"),
    ]
    print(f"{N} calls each; the bare call of a no-op app costs {base:.2f} µs\n")
    print("| request | auth off (µs) | auth on (µs) | added by auth (µs) |")
    print("|---|---:|---:|---:|")
    for label, path, method in rows:
        off = await measure(False, path, method) - base
        on = await measure(True, path, method) - base
        print(f"| {label} | {off:.2f} | {on:.2f} | {on - off:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
