"""Running the app under uvicorn with Tidings' own shutdown order."""

from __future__ import annotations

import logging
from types import FrameType

import uvicorn

from tidings.api.app import create_app
from tidings.hub import Hub
from tidings.settings import Settings

log = logging.getLogger("tidings")


class TidingsServer(uvicorn.Server):
    """uvicorn's server, told first when a shutdown signal arrives.

    On SIGTERM/SIGINT the hub is marked draining (``/readyz`` answers 503) before uvicorn
    stops accepting connections, finishes in-flight requests and runs the lifespan shutdown,
    where the store commits what it holds and closes.
    """

    def __init__(self, config: uvicorn.Config, hub: Hub) -> None:
        super().__init__(config)
        self.hub = hub  # told about the shutdown before uvicorn acts on it

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.hub.draining:
            log.info("shutdown signal %d received; draining", sig)
        self.hub.draining = True
        super().handle_exit(sig, frame)


def build_server(settings: Settings) -> TidingsServer:
    hub = Hub(settings)
    app = create_app(settings, hub)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
        access_log=settings.log_level == "debug",
        ws_per_message_deflate=False,
        server_header=False,
    )
    return TidingsServer(config, hub)


def serve(settings: Settings) -> None:
    build_server(settings).run()
