"""Every open stream connection of this node: counts, system broadcasts and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import Counter
from collections.abc import Callable
from typing import Any

from tidings import metrics
from tidings.streams.connection import StreamConnection
from tidings.streams.framing import jittered_retry_ms
from tidings.streams.live import HeartbeatClock, LiveWrites

log = logging.getLogger("tidings.streams")


class StreamRegistry:
    def __init__(self) -> None:
        self._open: set[StreamConnection] = set()
        self._empty = asyncio.Event()
        self._empty.set()
        # (tenant, transport, reason) -> connections closed
        self.closed: Counter[tuple[str, str, str]] = Counter()
        # (tenant, transport) -> events written by closed connections
        self.delivered: Counter[tuple[str, str]] = Counter()
        self.shutting_down = False
        # Set by the server: the transport of a connection, found by its ASGI scope (ASGI
        # itself has no way to abort a connection).
        self.transport_of: Callable[[Any], asyncio.WriteTransport | None] = lambda scope: None
        # Set by the server: whether the response of a scope is sent as HTTP/1.1 chunks, so
        # that live writes may frame their bytes themselves and skip the ASGI send.
        self.chunked_of: Callable[[Any], bool] = lambda scope: False
        # Set by the server: tells the connection serving a scope that its response is a
        # stream that only writes from now on, so what reading the request needed may go;
        # answers a future done when that connection is gone (None: the ASGI receive says).
        self.settle: Callable[[Any], asyncio.Future[None] | None] = lambda scope: None
        # SSE connections woken this loop turn; their events counted once per flush
        self.live = LiveWrites(metrics.STREAM_EVENTS.labels("sse").inc)
        self.heartbeats = HeartbeatClock()  # SSE connections' heartbeats

    def add(self, conn: StreamConnection) -> None:
        conn.socket_transport = self.transport_of(conn.scope)
        self._open.add(conn)
        self._empty.clear()
        metrics.STREAM_CONNECTIONS.labels(conn.transport).inc()

    def remove(self, conn: StreamConnection, reason: str) -> None:
        if conn not in self._open:
            return
        self._open.discard(conn)
        metrics.STREAM_CONNECTIONS.labels(conn.transport).dec()
        metrics.STREAM_CLOSED.labels(conn.transport, reason).inc()
        self.closed[(conn.tenant, conn.transport, reason)] += 1
        self.delivered[(conn.tenant, conn.transport)] += conn.delivered
        if not self._open:
            self._empty.set()

    def drop(self, conn: StreamConnection, *, grace: float = 0.0) -> None:
        """Abort a stalled client's connection, discarding the bytes it never accepted.

        A graceful close waits for the send buffer to drain, which a stalled socket never does,
        so it would stay open (with its buffers) for as long as the peer stays silent. With
        ``grace`` the connection first gets that long to take what was last written.
        """
        transport = conn.socket_transport
        if transport is None:
            return
        if grace > 0:
            asyncio.get_running_loop().call_later(grace, abort, transport)
        else:
            abort(transport)

    def broadcast_system(self, code: str, details: dict[str, Any]) -> None:
        for conn in self._open:
            conn.system(code, details)

    def end_where(self, chosen: Callable[[Any], bool], code: str, details: dict[str, Any]) -> int:
        """End every stream whose ASGI scope is ``chosen`` with a last ``system`` message."""
        ended = [conn for conn in self._open if chosen(conn.scope)]
        for conn in ended:
            conn.end(code, details)
        return len(ended)

    def stats(self, tenant: str) -> dict[str, Any]:
        """The streams of one tenant: open, behind, events written, closed by reason."""
        behind_all = sum(
            1 for conn in self._open for sub in conn.subs.values() if sub.cursor.behind
        )
        metrics.STREAM_CATCHUP.set(behind_all)
        mine = [conn for conn in self._open if conn.tenant == tenant]
        by_transport: Counter[str] = Counter(conn.transport for conn in mine)
        behind = sum(1 for conn in mine for sub in conn.subs.values() if sub.cursor.behind)
        delivered: Counter[str] = Counter(
            {t: n for (owner, t), n in self.delivered.items() if owner == tenant}
        )
        for conn in mine:
            delivered[conn.transport] += conn.delivered
        closed = {
            f"{t}:{r}": n for (owner, t, r), n in sorted(self.closed.items()) if owner == tenant
        }
        return {
            "connections": {"sse": by_transport["sse"], "websocket": by_transport["websocket"]},
            "subscriptions": sum(len(conn.subs) for conn in mine),
            "subscriptions_behind": behind,
            "events_delivered": {"sse": delivered["sse"], "websocket": delivered["websocket"]},
            "closed": closed,
        }

    def __len__(self) -> int:
        return len(self._open)

    async def shutdown(self, timeout: float) -> None:
        """Tell every stream to go (each with its own jittered retry) and wait for them."""
        self.shutting_down = True
        for conn in list(self._open):
            conn.begin_shutdown(jittered_retry_ms())
        try:
            async with asyncio.timeout(timeout):
                await self._empty.wait()
        except TimeoutError:
            log.warning(
                "%d streams did not close in %.1fs; dropping them", len(self._open), timeout
            )
            for conn in list(self._open):
                conn.close()
                # One stuck writing to a socket that accepts nothing would wait for the stall
                # time; dropping its connection ends that write at once.
                self.drop(conn)


def abort(transport: asyncio.WriteTransport) -> None:
    """Reset the connection: no FIN queued behind unsent bytes, nothing left in the kernel.

    ``transport.abort()`` alone closes the socket, and a closed socket with unsent data stays
    in FIN-WAIT-1 holding its send buffer (megabytes) until the peer reads or a timeout. With
    ``SO_LINGER`` on and a zero timeout the close discards the queue and sends an RST.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # closed already, or not a socket that lingers
        with contextlib.suppress(OSError, AttributeError, ValueError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    transport.abort()


_LINGER_ZERO = struct.pack("ii", 1, 0)
