"""A real HTTP receiver on loopback for webhook tests, with scriptable behaviour per request.

It runs its own asyncio loop in a thread and speaks just enough HTTP/1.1 (keep-alive,
``Content-Length`` bodies) to answer Tidings' delivery client. Every request is recorded with
its headers and body before the scripted action runs. The script is a queue of actions used
one per request, oldest first; when it is empty ``default`` answers. An action can answer
with any status, headers and body, wait first (longer than the server's attempt timeout to
make it time out), or close the socket without answering. ``stop`` closes the listening socket
too, so the next attempt is refused; ``start`` again listens on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.integration.server import free_port

REASONS = {200: "OK", 204: "No Content", 410: "Gone", 429: "Too Many Requests", 500: "Error"}


@dataclass(frozen=True)
class Action:
    """What the receiver does with one request."""

    status: int = 200
    body: bytes = b"ok"
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0  # wait this long before answering (or closing)
    close: bool = False  # close the socket instead of answering


def respond(
    status: int = 200, body: bytes = b"ok", headers: dict[str, str] | None = None
) -> Action:
    return Action(status, body, tuple((headers or {}).items()))


def hang(seconds: float) -> Action:
    """Answer 200, but only after ``seconds`` (longer than the attempt timeout: a timeout)."""
    return Action(delay_s=seconds)


def drop() -> Action:
    """Read the request, then close the connection without a word."""
    return Action(close=True)


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.monotonic() when the whole request had arrived
    wall: float  # time.time() at the same moment

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event_id(self) -> str:
        return str(self.json()["event"]["id"])


@dataclass
class Receiver:
    """Start with ``start()``; ``requests`` holds what arrived, ``script`` what comes next."""

    port: int = field(default_factory=free_port)
    default: Action = field(default_factory=respond)
    script: list[Action] = field(default_factory=list)
    choose: Callable[[Received], Action | None] | None = None  # consulted before the script
    requests: list[Received] = field(default_factory=list)
    answered: list[float] = field(default_factory=list)  # monotonic time of each answer sent
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    # -- control (called from the test's thread) -------------------------------------------

    def start(self) -> Receiver:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name=f"receiver-{self.port}", daemon=True
            )
            self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    def stop(self) -> None:
        """Stop listening and close every open connection (later attempts are refused)."""
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)

    def shutdown(self) -> None:
        """Stop listening, end the handlers still waiting, and end the thread."""
        self.stop()
        if self._loop is not None and self._thread is not None:
            asyncio.run_coroutine_threadsafe(_cancel_others(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
            self._loop = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def then(self, *actions: Action) -> Receiver:
        """Append actions to the script."""
        with self._lock:
            self.script.extend(actions)
        return self

    def fail_first(self, k: int, action: Action) -> Receiver:
        return self.then(*([action] * k))

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def event_ids(self) -> list[str]:
        return [r.event_id for r in self.received()]

    def wait_for(
        self,
        predicate: Callable[[list[Received]], bool],
        timeout: float = 30.0,
        what: str = "the expected requests",
    ) -> list[Received]:
        """Poll until ``predicate(requests)`` holds; fails with what arrived after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.received()
            if predicate(seen):
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what} did not arrive within {timeout}s; got {len(seen)} requests"
                )
            time.sleep(0.02)

    def wait_count(self, n: int, timeout: float = 30.0) -> list[Received]:
        return self.wait_for(lambda seen: len(seen) >= n, timeout, f"{n} requests")

    def wait_events(self, ids: Iterable[str], timeout: float = 30.0) -> list[Received]:
        wanted = set(ids)
        return self.wait_for(
            lambda seen: wanted <= {r.event_id for r in seen},
            timeout,
            f"{len(wanted)} distinct events",
        )

    # -- the server (runs on the receiver's loop) ------------------------------------------

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._serve, "127.0.0.1", self.port, reuse_address=True
            )

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await server.wait_closed()

    def _next_action(self, request: Received) -> Action:
        with self._lock:
            self.requests.append(request)
            if self.choose is not None:
                chosen = self.choose(request)
                if chosen is not None:
                    return chosen
            return self.script.pop(0) if self.script else self.default

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                action = self._next_action(request)
                if action.delay_s:
                    await asyncio.sleep(action.delay_s)
                if action.close:
                    writer.transport.abort()
                    return
                writer.write(_response(action))
                await writer.drain()
                with self._lock:
                    self.answered.append(time.monotonic())
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


async def _cancel_others() -> None:
    current = asyncio.current_task()
    others = [t for t in asyncio.all_tasks() if t is not current]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


async def _read_request(reader: asyncio.StreamReader) -> Received | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return Received(method, path, headers, body, time.monotonic(), time.time())


def _response(action: Action) -> bytes:
    reason = REASONS.get(action.status, "Status")
    lines = [f"HTTP/1.1 {action.status} {reason}", f"Content-Length: {len(action.body)}"]
    lines += [f"{name}: {value}" for name, value in action.headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + action.body


# -- talking to the server about its webhooks ------------------------------------------------


def poll(
    fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 30.0, what: str = ""
) -> Any:
    """Call ``fetch`` until ``done(result)``; the last result, or AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = fetch()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or 'condition'} not met within {timeout}s: {result!r}")
        time.sleep(0.05)


def create_endpoint(client: httpx.Client, url: str, **fields: Any) -> dict[str, Any]:
    answer = client.post("/v1/webhooks", json={"url": url, **fields})
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def deliveries(client: httpx.Client, webhook_id: str, **params: Any) -> list[dict[str, Any]]:
    """Every delivery of an endpoint (all pages), newest first."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"limit": 1000, **params, **({"cursor": cursor} if cursor else {})}
        answer = client.get(f"/v1/webhooks/{webhook_id}/deliveries", params=query)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        found.extend(body["deliveries"])
        cursor = body["next"]
        if cursor is None:
            return found


def wait_delivery(
    client: httpx.Client, webhook_id: str, event_id: str, status: str, timeout: float = 30.0
) -> dict[str, Any]:
    """The endpoint's delivery of ``event_id`` once it has ``status``."""

    def fetch() -> dict[str, Any] | None:
        for delivery in deliveries(client, webhook_id):
            if delivery["event_id"] == event_id:
                return delivery
        return None

    found: dict[str, Any] = poll(
        fetch,
        lambda d: d is not None and d["status"] == status,
        timeout,
        f"delivery of {event_id} to {webhook_id} becoming {status}",
    )
    return found


def publish(client: httpx.Client, type_: str, **fields: Any) -> dict[str, Any]:
    headers = fields.pop("headers", None)
    answer = client.post("/v1/events", json={"type": type_, **fields}, headers=headers)
    assert answer.status_code == 201, answer.text
    published: dict[str, Any] = answer.json()
    return published
