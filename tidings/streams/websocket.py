"""WebSocket streams: several subscriptions per socket, JSON text frames (DESIGN.md section 4)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from tidings.envelope import Event, parse_filter
from tidings.errors import TidingsError
from tidings.router.router import Router
from tidings.store import Store
from tidings.streams import resume
from tidings.streams.connection import Stalled, StoreReadError, StreamConnection, Subscription
from tidings.streams.framing import jittered_retry_ms, ws_event, ws_message
from tidings.streams.registry import StreamRegistry

log = logging.getLogger("tidings.streams")
MAX_SUBSCRIPTIONS = 100  # per socket
MAX_MESSAGE_BYTES = 65_536  # a client message larger than this is refused
CLOSE_GOING_AWAY_RESTART = 1012  # "service restart"
CLOSE_POLICY = 1008  # used for a stalled (slow) consumer
CLOSE_INTERNAL_ERROR = 1011  # the store could not be read


class WebSocketConnection(StreamConnection):
    transport = "websocket"

    def __init__(
        self,
        websocket: WebSocket,
        store: Store,
        router: Router,
        *,
        heartbeat_s: float,
        stall_s: float,
    ) -> None:
        super().__init__(store, router, heartbeat_s=heartbeat_s, stall_s=stall_s)
        self.websocket = websocket

    def encode_event(self, sub: Subscription, event: Event) -> bytes:
        return ws_event(sub.id, event)

    def encode_heartbeat(self, position: int | None, positions: dict[str, int | None]) -> bytes:
        return ws_message(
            "heartbeat", position=position, positions=positions, head=self.router.routed_through
        )

    def encode_system(self, code: str, details: dict[str, Any]) -> bytes:
        return ws_message("system", code=code, **details)

    def encode_shutdown(self, retry_ms: int) -> bytes:
        return ws_message("shutdown", retry_ms=retry_ms)

    async def send(self, frames: list[bytes]) -> None:
        send = self.websocket.send
        for frame in frames:
            await send({"type": "websocket.send", "text": frame.decode()})


def _error(op_id: Any, code: str, message: str) -> bytes:
    return ws_message("error", id=op_id, code=code, message=message)


async def serve_websocket(
    websocket: WebSocket,
    *,
    store: Store,
    router: Router,
    registry: StreamRegistry,
    tenant: str,
    heartbeat_s: float,
    stall_s: float,
) -> None:
    await websocket.accept()
    conn = WebSocketConnection(websocket, store, router, heartbeat_s=heartbeat_s, stall_s=stall_s)
    conn.scope = websocket.scope
    conn.tenant = tenant
    registry.add(conn)
    reader = asyncio.create_task(
        _read_ops(websocket, conn, store, tenant), name=f"tidings:ws-read:{conn.id}"
    )
    reason = "client"
    try:
        await conn.run()
        if conn.ended:
            reason = "revoked"
            await _close(websocket, CLOSE_POLICY, "key_revoked", stall_s)
        elif conn.shutdown_retry_ms is not None:
            reason = "shutdown"
            await _close(websocket, CLOSE_GOING_AWAY_RESTART, "server shutting down", stall_s)
    except StoreReadError as error:
        reason = "store_error"
        log.warning("closing WebSocket %s: the store read failed: %s", conn.id, error)
        with contextlib.suppress(Stalled, WebSocketDisconnect, RuntimeError):
            await conn.write([conn.encode_store_error(jittered_retry_ms(5000, 10_000))])
        await _close(websocket, CLOSE_INTERNAL_ERROR, "store_error", 1.0)
    except Stalled:
        reason = "stalled"
        log.info("closing WebSocket %s: accepted nothing for %.0fs", conn.id, stall_s)
        # The close frame gets through only if the socket drains again; either way the
        # connection is dropped soon, since a graceful close waits for a drain forever.
        sent = await _close(websocket, CLOSE_POLICY, "slow_consumer", 1.0)
        registry.drop(conn, grace=1.0 if sent else 0.0)
    except (WebSocketDisconnect, RuntimeError):
        reason = "client"
    finally:
        reader.cancel()
        conn.remove_all()
        registry.remove(conn, reason)


async def _close(websocket: WebSocket, code: int, reason: str, timeout: float) -> bool:
    """Send a close frame; False when it could not be written within ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            await websocket.close(code, reason)
    except (TimeoutError, RuntimeError, WebSocketDisconnect):
        return False
    return True


async def _read_ops(
    websocket: WebSocket, conn: WebSocketConnection, store: Store, tenant: str
) -> None:
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:
                conn.push(_error(None, "invalid_message", "send JSON text frames, not binary"))
                continue
            if len(text) > MAX_MESSAGE_BYTES:
                conn.push(
                    _error(
                        None, "message_too_large", f"messages are at most {MAX_MESSAGE_BYTES} bytes"
                    )
                )
                continue
            await _handle(text, conn, store, tenant)
    except (WebSocketDisconnect, RuntimeError):
        pass
    except Exception:
        log.exception("WebSocket %s: error reading client messages", conn.id)
    finally:
        conn.close()


async def _handle(text: str, conn: WebSocketConnection, store: Store, tenant: str) -> None:
    try:
        op = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        conn.push(_error(None, "malformed_json", f"the message is not valid JSON: {error}"))
        return
    if not isinstance(op, dict):
        conn.push(_error(None, "invalid_message", "a message is a JSON object with an `op`"))
        return
    op_id = op.get("id")
    kind = op.get("op")
    if kind == "ping":
        conn.push(ws_message("pong", id=op_id, head=conn.router.routed_through))
    elif kind == "subscribe":
        await _subscribe(op, conn, store, tenant)
    elif kind == "unsubscribe":
        if not isinstance(op_id, str) or not conn.remove_subscription(op_id):
            conn.push(_error(op_id, "unknown_subscription", f"no subscription with id {op_id!r}"))
        else:
            conn.push(ws_message("unsubscribed", id=op_id))
    else:
        conn.push(
            _error(op_id, "unknown_op", f"unknown op {kind!r}; use subscribe, unsubscribe or ping")
        )


async def _subscribe(
    op: dict[str, Any], conn: WebSocketConnection, store: Store, tenant: str
) -> None:
    sub_id = op.get("id")
    if not isinstance(sub_id, str) or not 1 <= len(sub_id) <= 100:
        conn.push(
            _error(sub_id, "invalid_subscription_id", "`id` must be a string of 1-100 characters")
        )
        return
    if sub_id in conn.subs:
        conn.push(
            _error(sub_id, "duplicate_subscription", f"subscription {sub_id!r} already exists")
        )
        return
    if len(conn.subs) >= MAX_SUBSCRIPTIONS:
        conn.push(
            _error(sub_id, "too_many_subscriptions", f"at most {MAX_SUBSCRIPTIONS} per socket")
        )
        return
    unknown = set(op) - {"op", "id", "filter", "last_event_id", "since"}
    if unknown:
        conn.push(
            _error(sub_id, "invalid_message", f"unknown fields: {', '.join(sorted(unknown))}")
        )
        return
    raw_filter = op.get("filter") or {}
    try:
        if not isinstance(raw_filter, dict):
            raise TidingsError(400, "invalid_filter", "`filter` must be a JSON object")
        flt = parse_filter(raw_filter, location="filter")
        since = op.get("since")
        if since is not None and not isinstance(since, str):
            raise TidingsError(400, "invalid_resume_point", "`since` must be an ISO 8601 time")
        start = await resume.resolve(
            store, tenant, header=None, last_event_id=op.get("last_event_id"), since=since
        )
        truncated = (
            await resume.truncation(store, tenant, start.position)
            if start.position is not None
            else None
        )
    except TidingsError as error:
        conn.push(_error(sub_id, error.code, error.message))
        return
    if sub_id in conn.subs:  # subscribed twice while the first was resolving
        conn.push(
            _error(sub_id, "duplicate_subscription", f"subscription {sub_id!r} already exists")
        )
        return
    position = start.position if start.position is not None else conn.router.routed_through
    conn.push(ws_message("subscribed", id=sub_id, position=position, filter=flt.to_dict()))
    if truncated:
        conn.push(
            ws_message(
                "system",
                sub=sub_id,
                code="history_truncated",
                message="events after the resume point were deleted by retention",
                **truncated,
            )
        )
    conn.add_subscription(sub_id, tenant, flt, start.position)
