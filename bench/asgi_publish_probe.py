"""A measurement aid, not a Tidings feature: Tidings with ``POST /v1/events`` (plain JSON,
one event or a batch) answered by a bare ASGI callable in front of FastAPI.

The profiles of the publish benchmark show the event-loop thread spending most of each
single-event request in uvicorn and in the FastAPI/Starlette layers, the same layers the
peer goes through. This probe keeps Tidings' own work (validation, the store's group commit,
metrics, the answer) and skips only the framework, to measure what a pure-ASGI publish route
would gain. Anything else (other paths, CloudEvents, errors) goes to the normal app.

    .venv/bin/python bench/asgi_publish_probe.py --port 18433 --data-dir /tmp/probe
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.envelope import PublishContext, candidates_from_json
from tidings.envelope.ids import trace_id_from_traceparent
from tidings.errors import TidingsError
from tidings.hub import Hub
from tidings.server import build_server
from tidings.settings import load_settings

JSON = b"application/json"


class FastPublish:
    """Answers plain-JSON publishes itself; passes everything else to ``app``."""

    def __init__(self, app: ASGIApp, hub: Hub) -> None:
        self.app = app  # the full Tidings app
        self.hub = hub  # its store and publisher

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/v1/events":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if headers.get(b"content-type", b"").split(b";")[0].strip() != JSON or (
            b"idempotency-key" in headers
        ):
            await self.app(scope, _replay(b"", receive), send)
            return
        started = time.perf_counter()
        body = await _read(receive, self.hub.settings.max_body_bytes)
        if body is None:
            await self.app(scope, _replay(b"", receive), send)
            return
        traceparent = headers.get(b"traceparent")
        ctx = PublishContext(
            trace_id=trace_id_from_traceparent(traceparent.decode() if traceparent else None)
        )
        try:
            candidates, batch = candidates_from_json(orjson.loads(body), ctx, self.hub.limits)
            results = await self.hub.publisher.publish(
                candidates, transport="http", started=started
            )
        except (TidingsError, orjson.JSONDecodeError):
            await self.app(scope, _replay(body, receive), send)  # the full app explains
            return
        fresh = any(not r.duplicate for r in results)
        if batch:
            answer = orjson.dumps({"events": [r.to_dict() for r in results]})
        else:
            answer = orjson.dumps(results[0].to_dict())
        extra = (
            [(b"location", f"/v1/events/{results[0].id}".encode())] if fresh and not batch else []
        )
        await send(
            {
                "type": "http.response.start",
                "status": 201 if fresh else 200,
                "headers": [
                    (b"content-type", JSON),
                    (b"content-length", str(len(answer)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})


async def _read(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the already-read body to the full app first."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again if body else receive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=18433)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    settings = load_settings(
        {"port": args.port, "data_dir": args.data_dir, "log_level": args.log_level}
    )
    server = build_server(settings)
    server.config.app = FastPublish(server.config.app, server.hub)
    server.run()


if __name__ == "__main__":
    main()
