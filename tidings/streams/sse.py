"""Server-Sent Events: one subscription per HTTP response (DESIGN.md section 4, SSE)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tidings.envelope import Event, Filter
from tidings.router.router import Router
from tidings.store import Store
from tidings.streams.connection import (
    STORE_ERROR_MESSAGE,
    Stalled,
    StoreReadError,
    StreamConnection,
    Subscription,
)
from tidings.streams.framing import (
    SSE_HEADERS,
    http_chunk,
    jittered_retry_ms,
    sse_event,
    sse_frame,
)
from tidings.streams.registry import StreamRegistry

log = logging.getLogger("tidings.streams")


class SSEConnection(StreamConnection):
    """One SSE stream. While it is live, the registry's live writes put its frames on the
    socket; a task of its own runs only while it is not (catching up from the store, waiting
    for a slow socket, sending a heartbeat behind such a wait, ending)."""

    transport = "sse"
    waits_only_when_paused = True  # uvicorn's HTTP send drains before it writes, never after

    def __init__(
        self,
        send: Send,
        store: Store,
        router: Router,
        registry: StreamRegistry,
        *,
        heartbeat_s: float,
        stall_s: float,
    ) -> None:
        super().__init__(store, router, heartbeat_s=heartbeat_s, stall_s=stall_s)
        self._send = send  # the ASGI send of this response
        self._registry = registry  # live writes, and the abort of a stalled socket
        # The transport, when the response goes out in HTTP/1.1 chunks that live writes may
        # frame themselves (found by the registry); None: every write takes the ASGI send.
        self.direct: asyncio.WriteTransport | None = None
        self._task: asyncio.Task[None] | None = None  # running while the stream is not live
        self._signal: asyncio.Future[None] | None = None  # what that task waits on
        self._next_heartbeat = 0.0  # loop time when the next heartbeat is due
        self._heartbeat_due = False  # a heartbeat is owed
        self.finished = False  # the response is over (or the socket was dropped)
        self.gone: asyncio.Future[None] | None = None  # what the response's task awaits
        self.end_reason = "client"  # why, for the registry's counts

    # -- framing ----------------------------------------------------------------------------

    def encode_event(self, sub: Subscription, event: Event) -> bytes:
        return sse_event(event)

    def encode_heartbeat(self, position: int | None, positions: dict[str, int | None]) -> bytes:
        return sse_frame(
            "heartbeat", {"position": position, "head": self.router.routed_through}, id=position
        )

    def encode_system(self, code: str, details: dict[str, Any]) -> bytes:
        return sse_frame("system", {"code": code, **details})

    def encode_store_error(self, retry_ms: int) -> bytes:
        message = {"code": "store_error", "message": STORE_ERROR_MESSAGE, "retry_ms": retry_ms}
        return sse_frame("system", message, retry_ms=retry_ms)  # EventSource waits as long

    def encode_shutdown(self, retry_ms: int) -> bytes:
        message = {
            "code": "shutdown",
            "message": "the server is shutting down",
            "retry_ms": retry_ms,
        }
        return sse_frame("shutdown", message, retry_ms=retry_ms)

    async def send(self, frames: list[bytes]) -> None:
        body = frames[0] if len(frames) == 1 else b"".join(frames)
        await self._send({"type": "http.response.body", "body": body, "more_body": True})

    # -- live writes ------------------------------------------------------------------------

    def wake(self) -> None:
        if self._task is not None:
            self._poke()
        elif not self.finished:
            self._registry.live.mark(self)

    def flush_live(self) -> int:
        """Write every queued frame in one HTTP chunk, or hand over to the task.

        Answers how many events went out; the caller counts them in the metric, once for all
        connections flushed together."""
        if self._task is not None or self.finished:
            return 0
        transport = self.direct
        if (
            transport is None
            or transport.is_closing()
            or transport.get_write_buffer_size()  # a slow socket: the task waits for it
            or self.closing
            or self.shutdown_retry_ms is not None
        ):
            self._activate()
            return 0
        frames: list[bytes] = []
        written = 0
        if self._outbox:
            frames, self._outbox = self._outbox, []
        for sub in self.subs.values():
            cursor = sub.cursor
            if cursor.behind:
                self._outbox[:0] = frames  # the task sends them first, then the page
                self._activate()
                self.delivered += written  # taken from another subscription and queued
                return written
            taken = cursor.take()
            if taken:
                frames.extend([sse_event(event) for event in taken])
                written += len(taken)
        if self._heartbeat_due:  # at the head now: its position may be advertised
            self._heartbeat_due = False
            frames.append(self._heartbeat())
        if frames:
            transport.write(http_chunk(frames[0] if len(frames) == 1 else b"".join(frames)))
        self.delivered += written
        return written

    def start_heartbeats(self) -> None:
        self._next_heartbeat = asyncio.get_running_loop().time() + self.heartbeat_s
        self._registry.heartbeats.join(self, self.heartbeat_s)

    def tick(self, now: float) -> None:
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.heartbeat_s
            self._heartbeat_due = True
            self.wake()

    # -- the task, while not live ---------------------------------------------------------

    def _activate(self) -> None:
        if self._task is None and not self.finished:
            self._task = asyncio.get_running_loop().create_task(
                self._run_until_live(), name=f"tidings:sse:{self.id}"
            )

    def _poke(self) -> None:
        if self._signal is not None and not self._signal.done():
            self._signal.set_result(None)

    async def _wait(self, timeout: float | None) -> None:
        signal = self._signal = asyncio.get_running_loop().create_future()
        try:
            if timeout is None:
                await signal
            else:
                await asyncio.wait_for(signal, timeout)
        except TimeoutError:
            pass
        finally:
            self._signal = None

    async def _run_until_live(self) -> None:
        try:
            try:
                await self._work()
            except StoreReadError as error:
                self.end_reason = "store_error"
                log.warning("closing SSE connection %s: the store read failed: %s", self.id, error)
                await self.write([self.encode_store_error(jittered_retry_ms(5000, 10_000))])
                await self._finish()
        except Stalled:
            self.end_reason = "stalled"
            log.info(
                "dropping SSE connection %s: it accepted nothing for %.0fs", self.id, self.stall_s
            )
            # The socket is stuck, so no `slow_consumer` frame can get through: reset it.
            self._end(drop=True)
        finally:
            self._task = None
        if not self.finished and self._has_work():  # woken while finishing
            self._activate()

    async def _work(self) -> None:
        while not self.finished:
            if self.closing:  # ended by the server (not by the client, which cancels this)
                frames = self._take_outbox()
                if self.farewell is not None:  # the last word (the stream's key was revoked)
                    frames.append(self.farewell)
                    self.farewell = None
                if self.ended:
                    self.end_reason = "revoked"
                if frames:
                    await self.write(frames)
                await self._finish()
                return
            if self.shutdown_retry_ms is not None:
                await self._deliver_through(self.router.routed_through)
                await self.write([self.encode_shutdown(self.shutdown_retry_ms)])
                self.end_reason = "shutdown"
                await self._finish()
                return
            if await self._pump():
                continue
            if self._heartbeat_due:
                self._heartbeat_due = False
                await self.write([self._heartbeat()])
                continue
            if self._has_work():
                continue
            transport = self.direct
            if transport is not None and not transport.get_write_buffer_size():
                return  # live again: the live writes take over
            # Nothing to write, but bytes still wait in the transport: live writes would
            # queue more behind them, so wait here, for events or for the socket to drain.
            await self._wait(None if transport is None else DRAIN_POLL_S)

    def _take_outbox(self) -> list[bytes]:
        frames, self._outbox = self._outbox, []
        return frames

    async def _finish(self) -> None:
        """End the response (the final chunk); reset the socket if it takes nothing."""
        try:
            async with asyncio.timeout(min(self.stall_s, 5.0)):
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})
        except TimeoutError:
            self._end(drop=True)
            return
        self._end(drop=False)

    def _end(self, *, drop: bool) -> None:
        self.finished = True
        if self.gone is not None and not self.gone.done():
            self.gone.set_result(None)  # the response is over: its task stops waiting
        if drop:
            self._registry.drop(self)

    def stop(self) -> None:
        """The response is over (the client went away, or the stream ended): stop everything."""
        self.finished = True
        self.closing = True
        self._registry.heartbeats.leave(self)
        if self._task is not None:
            self._task.cancel()


DRAIN_POLL_S = 0.05  # how often a task waiting on unsent bytes looks whether they went out


class SSEResponse(Response):
    """Runs one SSE connection as the response body."""

    def __init__(
        self,
        *,
        store: Store,
        router: Router,
        registry: StreamRegistry,
        tenant: str,
        filter: Filter,
        position: int | None,
        truncated: dict[str, int] | None,
        heartbeat_s: float,
        stall_s: float,
    ) -> None:
        # Not Response.__init__: an SSE body has no length or rendered content, and this object
        # lives as long as the stream (the lighter, the less an idle stream weighs).
        self.status_code = 200
        self.background = None
        self.raw_headers = []  # what a framework may add to; the stream sends SSE_HEADERS
        self._store = store
        self._router = router
        self._registry = registry
        self._tenant = tenant
        self._filter = filter
        self._position = position
        self._truncated = truncated
        self._heartbeat_s = heartbeat_s
        self._stall_s = stall_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        registry = self._registry
        conn = SSEConnection(
            send,
            self._store,
            self._router,
            registry,
            heartbeat_s=self._heartbeat_s,
            stall_s=self._stall_s,
        )
        conn.scope = scope
        conn.tenant = self._tenant
        registry.add(conn)
        if registry.chunked_of(scope):
            conn.direct = conn.socket_transport
        # The request has been read: its parser and headers may go, and the server says when
        # the connection is gone with one future (None: the ASGI receive says it).
        conn.gone = registry.settle(scope)
        try:
            self._start(conn)
            # This task only waits for the client to go; the stream is written by live
            # writes and, while it is not live, by the connection's own task. The end of the
            # response (or the reset of a stalled socket) ends this wait too.
            if conn.gone is not None:
                await conn.gone
            else:
                while (await receive())["type"] != "http.disconnect":
                    pass
        finally:
            task = conn._task
            conn.stop()
            if task is not None and task is not asyncio.current_task():
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            conn.remove_all()
            registry.remove(conn, conn.end_reason)

    def _start(self, conn: SSEConnection) -> None:
        """Subscribe and queue the first frames (outside ``__call__``, whose frame lives as
        long as the stream and would keep what is made here)."""
        sub = conn.add_subscription("", self._tenant, self._filter, self._position)
        hello = {
            "connection_id": conn.id,
            "filter": self._filter.to_dict(),
            "position": sub.cursor.position,
        }
        conn.push(sse_frame("connected", hello))
        if self._truncated:
            conn.system(
                "history_truncated",
                {
                    "message": "events after the resume point were deleted by retention",
                    **self._truncated,
                },
            )
        conn.start_heartbeats()
