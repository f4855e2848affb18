"""Identifiers: UUIDv7 event ids and W3C trace ids."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> str:
    """A UUIDv7 (RFC 9562) string: time-ordered, so ids sort roughly by creation.

    Within one millisecond a 12-bit counter (seeded randomly) keeps ids from one process
    increasing, as RFC 9562 section 6.2 method 1 suggests.
    """
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _counter = int.from_bytes(os.urandom(2), "big") & 0x7FF
        else:
            _counter += 1
            if _counter > 0xFFF:  # counter overflow: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            ms = _last_ms
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | _counter << 64 | 0b10 << 62 | rand
    return str(uuid.UUID(int=value))


def new_trace_id() -> str:
    """A random W3C trace id (32 lowercase hex digits, never all zeros)."""
    while True:
        value = os.urandom(16).hex()
        if value != "0" * 32:
            return value


def trace_id_from_traceparent(header: str | None) -> str | None:
    """The trace id of a valid W3C ``traceparent`` header, else None (the spec says ignore it)."""
    if not header:
        return None
    match = _TRACEPARENT.match(header.strip().lower())
    if not match or match.group(1) == "ff":
        return None
    trace_id = match.group(2)
    if trace_id == "0" * 32 or match.group(3) == "0" * 16:
        return None
    return trace_id
