"""NDJSON input for bulk publishing: lines into batches, and the server's refusals back onto lines.

No I/O beyond iterating the lines it is given, so the line bookkeeping stands on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

# Below the server's default TIDINGS_MAX_BODY_BYTES (8 MiB), leaving room for the brackets and
# commas; a server with a lower limit answers 413 and the publisher splits the batch.
MAX_BATCH_BYTES = 8_000_000


@dataclass(frozen=True, slots=True)
class Line:
    """One event of the input."""

    number: int  # 1-based line number in the input, for error messages
    event: dict[str, Any]  # the JSON object as given


@dataclass(frozen=True, slots=True)
class Batch:
    """Events to send in one request."""

    lines: list[Line]
    consumed: int  # input bytes read since the previous batch, for the progress bar


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that is not a JSON object; it is reported and never sent."""

    number: int
    reason: str


def _event(number: int, text: bytes) -> dict[str, Any] | BadLine:
    try:
        event = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        return BadLine(number, f"not valid JSON ({error.msg}, column {error.colno})")
    if not isinstance(event, dict):
        return BadLine(number, "not a JSON object (one event per line)")
    return event


def read_batches(
    source: Iterable[bytes], size: int, max_bytes: int = MAX_BATCH_BYTES
) -> Iterator[Batch | BadLine]:
    """Group the non-blank lines of ``source`` into batches of at most ``size`` events.

    Bad lines are yielded as soon as they are read, so they are reported in input order.
    """
    lines: list[Line] = []
    consumed = 0
    body_bytes = 0
    for number, raw in enumerate(source, start=1):
        text = raw.strip()
        if text:
            event = _event(number, text)
            if isinstance(event, BadLine):
                yield event
            else:
                if lines and (len(lines) >= size or body_bytes + len(text) + 1 > max_bytes):
                    yield Batch(lines, consumed)
                    lines, consumed, body_bytes = [], 0, 0
                lines.append(Line(number, event))
                body_bytes += len(text) + 1
        consumed += len(raw)
    if lines:
        yield Batch(lines, consumed)


def failed_items(details: list[Any], count: int) -> dict[int, list[str]]:
    """The batch indices that ``details`` names (``loc`` = ``["body", i, field...]``).

    Each index maps to what the server said about it, e.g. ``["type: Field required"]``.
    """
    failed: dict[int, list[str]] = {}
    for detail in details:
        if not isinstance(detail, dict):
            continue
        loc = detail.get("loc")
        if not (isinstance(loc, list) and len(loc) >= 2 and loc[0] == "body"):
            continue
        index = loc[1]
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
            continue
        field = ".".join(str(part) for part in loc[2:])
        message = str(detail.get("msg", ""))
        failed.setdefault(index, []).append(f"{field}: {message}" if field else message)
    return failed
