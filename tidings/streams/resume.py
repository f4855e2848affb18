"""Where a new subscription starts: Last-Event-ID header, ``last_event_id``, ``since``, or head."""

from __future__ import annotations

from dataclasses import dataclass

from tidings.envelope.timefmt import parse_iso
from tidings.errors import TidingsError
from tidings.store import Store

MAX_POSITION = 2**63 - 1  # positions are 64-bit signed integers in every store
MAX_POSITION_DIGITS = 40  # more digits than any position, with room for leading zeros


@dataclass(frozen=True, slots=True)
class Resume:
    position: int | None  # None: start at the head, live
    requested: str  # what the client asked for, for the `connected` message


def _bad(name: str, message: str) -> TidingsError:
    return TidingsError(
        400, "invalid_resume_point", message, details=[{"loc": [name], "msg": message}]
    )


def parse_position(value: object, name: str) -> int:
    """A position from a header, a query parameter or a JSON message (any JSON value)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _bad(name, f"{name} must be a non-negative integer position")
    if isinstance(value, int):
        number = value
    else:
        text = value.strip()
        # ASCII digits only: str.isdigit also accepts "²" (which int() refuses) and other
        # scripts' digits; the length cap keeps int() under its 4,300-digit limit.
        if not (text.isascii() and text.isdigit()) or len(text) > MAX_POSITION_DIGITS:
            shown = (
                value if len(value) <= MAX_POSITION_DIGITS else value[:MAX_POSITION_DIGITS] + "..."
            )
            raise _bad(name, f"{name} must be a non-negative integer position, not {shown!r}")
        number = int(text)
    if number < 0 or number > MAX_POSITION:
        raise _bad(name, f"{name} must be a non-negative integer position up to {MAX_POSITION}")
    return number


async def resolve(
    store: Store,
    tenant: str,
    *,
    header: str | None,
    last_event_id: str | int | None,
    since: str | None,
) -> Resume:
    """The first found of: the Last-Event-ID header, ``last_event_id``, ``since``, the head."""
    if header is not None and header.strip() != "":
        return Resume(parse_position(header, "Last-Event-ID"), "last_event_id")
    if last_event_id is not None and last_event_id != "":
        return Resume(parse_position(last_event_id, "last_event_id"), "last_event_id")
    if since:
        if not isinstance(since, str):
            raise _bad("since", "since must be an ISO 8601 time")
        try:
            since_us = parse_iso(since)
        except ValueError as error:
            raise _bad("since", str(error)) from None
        return Resume(await store.position_before(tenant, since_us), "since")
    return Resume(None, "head")


async def truncation(store: Store, tenant: str, position: int) -> dict[str, int] | None:
    """``history_truncated`` details when retention deleted events after ``position``."""
    purged = await store.purged_through(tenant)
    if position >= purged:
        return None
    earliest = await store.earliest(tenant)
    return {"requested": position, "earliest": earliest if earliest is not None else purged + 1}
