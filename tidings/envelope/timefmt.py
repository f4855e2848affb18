"""Time on the wire is ISO 8601 UTC with milliseconds; inside, integer microseconds since 1970."""

from __future__ import annotations

import time
from datetime import UTC, datetime

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_us() -> int:
    return time.time_ns() // 1000


def to_us(value: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def format_us(us: int) -> str:
    """``2026-11-23T10:00:00.012Z``: the one time format Tidings writes."""
    seconds, micro = divmod(us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micro // 1000:03d}Z"


def parse_iso(text: str) -> int:
    """Parse an ISO 8601 timestamp (``Z`` or an offset; none means UTC) to microseconds.

    Raises ValueError with a readable message.
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time such as 2026-11-23T10:00:00Z") from None
    return to_us(parsed)
