"""Identifiers: UUIDv7 event ids and W3C trace ids."""

from __future__ import annotations

import os
import re
import threading
import time

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")

_lock = threading.Lock()
_last_ms = 0
_counter = 0
# Random bytes are taken from a 4 KiB pool: one os.urandom call per id cost a quarter of the
# time of publishing 100-event batches (each call also gives up the GIL to the writer thread).
_POOL_SIZE = 4096
_pool = b""
_pool_at = 0


def _random(count: int) -> bytes:
    """``count`` random bytes from the pool; the caller holds ``_lock``."""
    global _pool, _pool_at
    if _pool_at + count > len(_pool):
        _pool, _pool_at = os.urandom(_POOL_SIZE), 0
    chunk = _pool[_pool_at : _pool_at + count]
    _pool_at += count
    return chunk


def _forget_pool() -> None:
    """A forked child must not reuse its parent's random bytes."""
    global _pool, _pool_at
    _pool, _pool_at = b"", 0


os.register_at_fork(after_in_child=_forget_pool)


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
            _counter = int.from_bytes(_random(2), "big") & 0x7FF
        else:
            _counter += 1
            if _counter > 0xFFF:  # counter overflow: borrow the next millisecond
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        counter = _counter
        rand = int.from_bytes(_random(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_trace_id() -> str:
    """A random W3C trace id (32 lowercase hex digits, never all zeros)."""
    while True:
        with _lock:
            value = _random(16).hex()
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
