"""``tidings serve`` with the ingest part attached, for as long as the server does not attach it
itself: the hub starts ingest after the store and stops it first, and the app has the ingest and
dead-letter routes. Run as ``python -m tests.integration.ingest.serve_with_ingest``."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

import uvicorn

from tidings.api import dead_letters as dead_letters_api
from tidings.api import ingest as ingest_api
from tidings.api.app import create_app
from tidings.hub import Hub
from tidings.ingest.manager import IngestManager
from tidings.server import TidingsServer
from tidings.settings import load_settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args()
    settings = load_settings({"port": args.port, "data_dir": args.data_dir})
    hub = Hub(settings)
    ingest = IngestManager(settings, hub.publisher, hub.store, hub.streams)
    hub.ingest = ingest  # type: ignore[attr-defined]
    hub_start, hub_stop, begin_shutdown = hub.start, hub.stop, hub.begin_shutdown

    async def start() -> None:
        await hub_start()
        await ingest.start()

    async def stop() -> None:
        await ingest.stop()
        await hub_stop()

    def begin() -> None:
        # Adapters stop acknowledging input as soon as the shutdown begins.
        import asyncio

        asyncio.get_running_loop().create_task(ingest.stop(), name="tidings:ingest-stop")
        begin_shutdown()

    hub.start, hub.stop, hub.begin_shutdown = start, stop, begin  # type: ignore[method-assign]
    app = create_app(settings, hub)
    app.include_router(ingest_api.router)
    app.include_router(dead_letters_api.router)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
        ws_per_message_deflate=False,
        server_header=False,
    )
    server = TidingsServer(config, hub)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, server.handle_exit)
    server.run()


if __name__ == "__main__":
    main()
