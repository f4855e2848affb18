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
    if count > _POOL_SIZE:
        return os.urandom(count)
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
    return uuid7s(1)[0]


def uuid7s(count: int) -> list[str]:
    """``count`` UUIDv7 strings in increasing order, drawn under one lock (a batch's ids)."""
    global _last_ms, _counter
    values: list[int] = []
    with _lock:
        ms = time.time_ns() // 1_000_000
        rand = _random(8 * count)
        for offset in range(0, 8 * count, 8):
            if ms > _last_ms:
                _last_ms = ms
                _counter = int.from_bytes(_random(2), "big") & 0x7FF
            else:
                _counter += 1
                if _counter > 0xFFF:  # counter overflow: borrow the next millisecond
                    _last_ms += 1
                    _counter = 0
            low = int.from_bytes(rand[offset : offset + 8], "big") & _RAND_MASK
            values.append((_last_ms & _MS_MASK) << 80 | _VERSION | _counter << 64 | _VARIANT | low)
    out = []
    for value in values:
        h = f"{value:032x}"
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


_RAND_MASK = (1 << 62) - 1
_MS_MASK = (1 << 48) - 1
_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62


def new_trace_id() -> str:
    """A random W3C trace id (32 lowercase hex digits, never all zeros)."""
    return new_trace_ids(1)[0]


def new_trace_ids(count: int) -> list[str]:
    """``count`` random W3C trace ids, drawn from the pool at once."""
    with _lock:
        hexed = _random(16 * count).hex()
    out = [hexed[i : i + 32] for i in range(0, 32 * count, 32)]
    for index, value in enumerate(out):
        while value == _ZERO_TRACE:  # one chance in 2**128, but the spec forbids it
            with _lock:
                value = _random(16).hex()
        out[index] = value
    return out


_ZERO_TRACE = "0" * 32


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
