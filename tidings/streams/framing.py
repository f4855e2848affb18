"""Wire formats for streams (no I/O): SSE frames and WebSocket JSON messages.

An event's JSON is encoded once (``Event.encode``); its SSE frame is built once and cached on
the event, so a thousand subscribers cost one encoding. WebSocket messages splice the same
bytes into ``{"op":"event","sub":...,"event":...}``.
"""

from __future__ import annotations

import random
import re
from typing import Any

import orjson

from tidings.envelope import Event

_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what ends a line in an SSE stream
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-store"),
    (b"x-accel-buffering", b"no"),  # tell nginx-style proxies not to buffer the stream
    (b"connection", b"keep-alive"),
]


def sse_event(event: Event) -> bytes:
    """``event: event`` / ``id: <seq>`` / ``data: <json>``, cached on the event."""
    frame = event.wire.get("sse")
    if frame is None:
        frame = b"event: event\nid: %d\ndata: %s\n\n" % (event.seq, event.encode())
        event.wire["sse"] = frame
    return frame


def http_chunk(body: bytes) -> bytes:
    """``body`` as one HTTP/1.1 chunk: the bytes the server's own send writes for it."""
    return b"%x\r\n%s\r\n" % (len(body), body)


def sse_frame(name: str, data: Any, *, id: int | None = None, retry_ms: int | None = None) -> bytes:
    """Any other SSE frame; ``data`` is JSON-encoded on one line (JSON escapes every newline)."""
    lines = [b"event: " + name.encode()]
    if id is not None:
        lines.append(b"id: %d" % id)
    if retry_ms is not None:
        lines.append(b"retry: %d" % retry_ms)
    lines.append(b"data: " + orjson.dumps(data))
    return b"\n".join(lines) + b"\n\n"


def sse_comment(text: str = "") -> bytes:
    """A comment frame (keeps proxies from timing out); each line of ``text`` is its own comment.

    A raw line break inside one comment line would start a field line and could forge an event.
    """
    lines = _LINE_BREAK.split(text)
    return b"".join(b": " + line.encode() + b"\n" for line in lines) + b"\n"


def ws_event(sub_id: str, event: Event) -> bytes:
    """The WebSocket event message, splicing the event's cached JSON."""
    return b'{"op":"event","sub":%s,"event":%s}' % (orjson.dumps(sub_id), event.encode())


def ws_message(op: str, **fields: Any) -> bytes:
    return orjson.dumps({"op": op, **fields})


def jittered_retry_ms(
    base_ms: int = 2000, spread_ms: int = 8000, rng: random.Random | None = None
) -> int:
    """How long a client should wait before reconnecting after a shutdown.

    Spread over ``[base, base + spread)`` so that thousands of clients do not return at once.
    """
    return base_ms + int((rng or random).random() * spread_ms)
