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
    """A new W3C trace id (32 lowercase hex digits, never all zeros): see ``new_trace_ids``."""
    return new_trace_ids(1)[0]


def new_trace_ids(count: int) -> list[str]:
    """``count`` new W3C trace ids: the Unix time in milliseconds (48 bits), then 80 random bits.

    Time first, as AWS X-Ray's trace ids do, so that new ids sort after the stored ones: the
    SQLite log indexes ``trace_id`` (``events_by_trace``), and with fully random ids every new
    event landed on a random page of that index, so each commit rewrote one 4 KiB page per
    event, doubling the writer's CPU per event and growing with the log (BENCHMARKS.md,
    publish section). W3C Trace Context Level 2 asks only that the right-most 7 bytes be
    random; these are 10. The time part is never zero, so neither is the id.
    """
    prefix = f"{time.time_ns() // 1_000_000 & _MS_MASK:012x}"
    with _lock:
        hexed = _random(10 * count).hex()
    return [prefix + hexed[i : i + 20] for i in range(0, 20 * count, 20)]


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
