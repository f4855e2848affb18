"""Running the app under uvicorn with Tidings' own shutdown order."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import re
import signal
import socket
import sys
from types import FrameType
from typing import Any

import uvicorn

from tidings import logs
from tidings.api.app import create_asgi
from tidings.auth.service import is_loopback
from tidings.connection_limits import ConnectionLimits, connection_cap, raise_open_files_limit
from tidings.http_protocol import PROTOCOL_SCOPE_KEY, guarded_protocol
from tidings.hub import Hub
from tidings.settings import Settings

log = logging.getLogger("tidings")

# A publish allocates a few objects per event that live until its commit is answered, tens of
# milliseconds. With Python's default young generation (700 objects) they outlive young
# collections and pile into the old generation, whose full collections then scan the whole
# heap: about a tenth of the server's CPU under 100-event batches (BENCHMARKS.md, publish
# section). A young generation of 20,000 lets them die young.
GC_THRESHOLDS = (20_000, 10, 10)


class TidingsServer(uvicorn.Server):
    """uvicorn's server, told first when a shutdown signal arrives.

    On SIGTERM/SIGINT the hub is marked draining (``/readyz`` answers 503) before uvicorn
    stops accepting connections, finishes in-flight requests and runs the lifespan shutdown,
    where the store commits what it holds and closes.
    """

    def __init__(self, config: uvicorn.Config, hub: Hub) -> None:
        super().__init__(config)
        self.hub = hub  # told about the shutdown before uvicorn acts on it
        hub.streams.transport_of = self.transport_of
        hub.streams.chunked_of = self.chunked_of
        hub.streams.settle = self.settle

    def _protocol_of(self, scope: Any) -> Any:
        """The uvicorn protocol of the open connection that is serving ``scope``.

        Tidings' protocol names itself in the scope (``PROTOCOL_SCOPE_KEY``). Otherwise uvicorn's
        protocols keep the scope of their current request, and the peer address is the last
        resort. (The scope's ``client`` alone is not enough: behind a trusted proxy it holds the
        forwarded address, not the peer's.)
        """
        if not scope:
            return None
        named = scope.get(PROTOCOL_SCOPE_KEY)
        if named is not None:
            return named if named in self.server_state.connections else None
        connections = list(self.server_state.connections)
        found = next((c for c in connections if getattr(c, "scope", None) is scope), None)
        if found is None and scope.get("client"):
            peer = tuple(scope["client"])
            found = next((c for c in connections if getattr(c, "client", None) == peer), None)
        return found

    def transport_of(self, scope: Any) -> asyncio.WriteTransport | None:
        """The transport of the open connection that is serving ``scope``."""
        transport: asyncio.WriteTransport | None = getattr(
            self._protocol_of(scope), "transport", None
        )
        return transport

    def chunked_of(self, scope: Any) -> bool:
        """Whether the started response of ``scope`` goes out in HTTP/1.1 chunks written by
        uvicorn's httptools protocol itself (its ``chunked_encoding``), so that bytes framed
        the same way may be written to its transport directly."""
        cycle = getattr(self._protocol_of(scope), "cycle", None)
        return getattr(cycle, "chunked_encoding", None) is True

    def settle(self, scope: Any) -> asyncio.Future[None] | None:
        """Let the protocol serving ``scope`` drop what its request needed, now that the
        response is a stream that only writes (``GuardedHttpProtocol.settle_stream``); the
        future it answers is done when the connection is gone."""
        settle_stream = getattr(self._protocol_of(scope), "settle_stream", None)
        gone: asyncio.Future[None] | None = settle_stream(scope) if settle_stream else None
        return gone

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Open the store before uvicorn starts the app, so a store that cannot be used ends
        the process with one line (``StoreOpenError``, raised out of ``serve``), not with a
        traceback of the lifespan."""
        await self.hub.open_store()
        await super().startup(sockets)
        # What startup built (modules, routes, models, settings) lives as long as the process:
        # set aside, it is left out of every later full collection (see ``GC_THRESHOLDS``).
        gc.collect()
        gc.freeze()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Refuse new connections, end the streams, then let uvicorn shut down.

        uvicorn's own shutdown closes every WebSocket with 1012 at once and then waits for open
        responses, so the streams are ended first: each gets what was committed and its
        ``shutdown`` message. uvicorn's wait for the remaining requests gets what is left of
        ``TIDINGS_SHUTDOWN_TIMEOUT_S``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.hub.settings.shutdown_timeout_s
        for server in self.servers:
            server.close()
        self.hub.begin_shutdown()
        await self.hub.streams_closed()
        self.config.timeout_graceful_shutdown = max(1, math.ceil(deadline - loop.time()))
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.hub.draining:
            log.info("shutdown signal %d received; draining", sig)
            self.hub.draining = True
            # Streams never end on their own, and uvicorn waits for open connections before
            # the lifespan shutdown: end them now, after what was committed is delivered.
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                loop.call_soon_threadsafe(self.hub.begin_shutdown)
        super().handle_exit(sig, frame)


class MaskKeys(logging.Filter):
    """Masks ``access_token=`` in access log lines: a key in a URL must not reach a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(a, str) and "access_token=" in a for a in record.args
        ):
            record.args = tuple(
                _TOKEN.sub(r"\1********", a) if isinstance(a, str) else a for a in record.args
            )
        return True


_TOKEN = re.compile(r"(access_token=)[^&\s]*")


def warn_if_open(settings: Settings, auth_on: bool) -> None:
    """Listening beyond this machine without keys lets anyone read and change everything."""
    if auth_on or is_loopback(settings.host):
        return
    log.warning(
        "\n" + "!" * 78 + "\n"
        "  AUTH IS OFF on %s, which is not a loopback address. Anyone who can reach this\n"
        "  port can read every event, publish, register webhooks and delete dead letters.\n"
        "  Unset TIDINGS_AUTH=off (or drop --no-auth) unless a proxy in front authenticates.\n"
        + "!"
        * 78,
        settings.host,
    )


def build_server(settings: Settings) -> TidingsServer:
    hub = Hub(settings)
    warn_if_open(settings, hub.auth.enabled)
    logging.getLogger("uvicorn.access").addFilter(MaskKeys())
    app = create_asgi(settings, hub)
    open_files = raise_open_files_limit()
    cap, warning = connection_cap(open_files, settings.max_connections)
    if warning:
        log.warning(warning)
    log.info("holding at most %d connections (open-files limit %d)", cap, open_files)
    limits = ConnectionLimits(cap, settings.header_timeout_s, settings.max_header_bytes)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=logs.dict_config(settings.log_level, settings.log_format, settings.access_log),
        lifespan="on",
        http=guarded_protocol(limits),
        timeout_keep_alive=settings.keepalive_s,  # type: ignore[arg-type]  # a float works
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
        access_log=settings.access_log,
        ws_per_message_deflate=False,
        server_header=False,
    )
    return TidingsServer(config, hub)


def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down in order and exit 0.

    After its graceful shutdown uvicorn raises the captured signal again under the handler
    that was installed before it started, which by default ends the process *by* that
    signal (exit -15) rather than with 0. The server's own handler is installed around the
    run instead: once the server has shut down it does nothing, and a signal that arrives
    just before uvicorn installs its handlers still starts the shutdown.
    """
    # The SQLite writer thread needs the GIL for a moment per group; with the default 5 ms
    # switch interval it waits behind the event loop and commits pile up (measured: ~2,000
    # single-event publishes/s at 5 ms, ~2,600 at 1 ms, worse again below 0.5 ms).
    sys.setswitchinterval(0.001)
    gc.set_threshold(*GC_THRESHOLDS)
    server = build_server(settings)
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, server.handle_exit) for sig in handled}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
