"""Server-Sent Events: one subscription per HTTP response (DESIGN.md section 4, SSE)."""

from __future__ import annotations

import asyncio
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
from tidings.streams.framing import SSE_HEADERS, jittered_retry_ms, sse_event, sse_frame
from tidings.streams.registry import StreamRegistry

log = logging.getLogger("tidings.streams")


class SSEConnection(StreamConnection):
    transport = "sse"
    waits_only_when_paused = True  # uvicorn's HTTP send drains before it writes, never after

    def __init__(
        self, send: Send, store: Store, router: Router, *, heartbeat_s: float, stall_s: float
    ) -> None:
        super().__init__(store, router, heartbeat_s=heartbeat_s, stall_s=stall_s)
        self._send = send  # the ASGI send of this response

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
        super().__init__(status_code=200)
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
        conn = SSEConnection(
            send, self._store, self._router, heartbeat_s=self._heartbeat_s, stall_s=self._stall_s
        )
        conn.scope = scope
        conn.tenant = self._tenant
        self._registry.add(conn)
        watcher = asyncio.create_task(
            _watch_disconnect(receive, conn), name=f"tidings:sse-watch:{conn.id}"
        )
        reason = "client"
        try:
            sub = conn.add_subscription("", self._tenant, self._filter, self._position)
            hello = {
                "connection_id": conn.id,
                "filter": self._filter.to_dict(),
                "position": sub.cursor.position,
            }
            frames = [sse_frame("connected", hello)]
            if self._truncated:
                frames.append(
                    sse_frame(
                        "system",
                        {
                            "code": "history_truncated",
                            "message": "events after the resume point were deleted by retention",
                            **self._truncated,
                        },
                    )
                )
            await conn.write(frames)
            await conn.run()
            if conn.ended:
                reason = "revoked"
                await _finish(send, self._stall_s)
            elif conn.shutdown_retry_ms is not None:
                reason = "shutdown"
                await _finish(send, self._stall_s)
        except StoreReadError as error:
            reason = "store_error"
            log.warning("closing SSE connection %s: the store read failed: %s", conn.id, error)
            try:
                await conn.write([conn.encode_store_error(jittered_retry_ms(5000, 10_000))])
                await _finish(send, self._stall_s)
            except Stalled:
                INCOMPLETE.expect()
                self._registry.drop(conn)
        except Stalled:
            reason = "stalled"
            log.info(
                "closing SSE connection %s: accepted nothing for %.0fs", conn.id, self._stall_s
            )
            # The socket is stuck, so no `slow_consumer` frame can get through: drop the
            # connection and end the response unfinished.
            INCOMPLETE.expect()
            self._registry.drop(conn)
        finally:
            watcher.cancel()
            conn.remove_all()
            self._registry.remove(conn, reason)


async def _finish(send: Send, timeout: float) -> None:
    try:
        async with asyncio.timeout(min(timeout, 5.0)):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except TimeoutError:
        INCOMPLETE.expect()


async def _watch_disconnect(receive: Receive, conn: StreamConnection) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            conn.close()
            return


class _IncompleteResponses(logging.Filter):
    """uvicorn logs an error when a response ends unfinished; for a stalled stream that is
    the intended way to drop the connection, so those expected messages are filtered."""

    def __init__(self) -> None:
        super().__init__()
        self.expected = 0

    def expect(self) -> None:
        self.expected += 1

    def filter(self, record: logging.LogRecord) -> bool:
        if self.expected and "without completing response" in record.getMessage():
            self.expected -= 1
            return False
        return True


INCOMPLETE = _IncompleteResponses()
logging.getLogger("uvicorn.error").addFilter(INCOMPLETE)
