"""Query-string parameters of the history endpoints: filters, bounds, order, paging."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Literal

import orjson
from starlette.datastructures import QueryParams

from tidings.envelope import parse_filter
from tidings.envelope.timefmt import parse_iso
from tidings.errors import TidingsError
from tidings.store import Query

HISTORY_PARAMS = (
    "since",
    "until",
    "time_since",
    "time_until",
    "after",
    "before",
    "order",
    "limit",
    "cursor",
    "tenant",  # root only: read another tenant's history (tidings.api.tenancy)
)
# A browser download cannot set headers either: its key comes as access_token, read by auth.
EXPORT_PARAMS = (*HISTORY_PARAMS, "format", "access_token")
MAX_LIMIT = 1000
MAX_POSITION = 2**63 - 1  # positions are 64-bit signed integers in every store
_DIGITS = re.compile(r"[0-9]{1,40}")  # ASCII digits; no sign, space, "_" or other scripts


def _bad(name: str, message: str) -> TidingsError:
    return TidingsError(
        400, "invalid_parameter", message, details=[{"loc": ["query", name], "msg": message}]
    )


def multi_dict(params: QueryParams) -> dict[str, str | list[str]]:
    """Query parameters with repeats kept (``?type=a&type=b`` means ``type=a,b``)."""
    out: dict[str, str | list[str]] = {}
    for key in params:
        values = params.getlist(key)
        out[key] = values if len(values) > 1 else values[0]
    return out


def _single(params: Mapping[str, str | list[str]], name: str) -> str | None:
    value = params.get(name)
    if isinstance(value, list):
        raise _bad(name, f"{name} may be given once")
    return value


def _time(params: Mapping[str, str | list[str]], name: str) -> int | None:
    value = _single(params, name)
    if value is None or value == "":
        return None
    try:
        moment = parse_iso(value)
    except ValueError as error:
        raise _bad(name, str(error)) from None
    if name.endswith("until") and moment % 1000 == 0:
        # Times are shown to the millisecond but stored to the microsecond: an upper bound
        # given to the millisecond covers that whole millisecond (so `until=<received_at>`
        # includes the event it was copied from).
        moment += 999
    return moment


def _int(
    params: Mapping[str, str | list[str]], name: str, low: int, high: int | None = None
) -> int | None:
    value = _single(params, name)
    if value is None or value == "":
        return None
    if not _DIGITS.fullmatch(value):
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise _bad(name, f"{name} must be a non-negative integer, not {shown!r}")
    number = int(value)
    top = MAX_POSITION if high is None else high
    if number < low or number > top:
        raise _bad(name, f"{name} must be between {low} and {top}")
    return number


def parse_query(
    raw: QueryParams,
    *,
    allowed: tuple[str, ...] = HISTORY_PARAMS,
    default_order: str = "desc",
    default_limit: int | None = 100,
) -> Query:
    params = multi_dict(raw)
    flt = parse_filter(params, ignore=allowed)
    order = _single(params, "order") or default_order
    if order not in ("asc", "desc"):
        raise _bad("order", "order must be 'asc' or 'desc'")
    limit = _int(params, "limit", 1, MAX_LIMIT if default_limit is not None else None)
    query = Query(
        filter=flt,
        since_us=_time(params, "since"),
        until_us=_time(params, "until"),
        time_since_us=_time(params, "time_since"),
        time_until_us=_time(params, "time_until"),
        after=_int(params, "after", 0),
        before=_int(params, "before", 0),
        order=_order(order),
        limit=limit if limit is not None else (default_limit or 0),
    )
    cursor = _single(params, "cursor")
    return apply_cursor(query, cursor) if cursor else query


def _order(value: str) -> Literal["asc", "desc"]:
    return "asc" if value == "asc" else "desc"


def _is_position(value: object) -> bool:
    """A seq as the stores hold it: a JSON integer (never a bool) within 64 bits."""
    return type(value) is int and 0 <= value <= MAX_POSITION


def make_cursor(query: Query, last_seq: int) -> str:
    """An opaque cursor for the page after the one that ended at ``last_seq``."""
    raw = orjson.dumps({"o": query.order, "s": last_seq})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def apply_cursor(query: Query, cursor: str) -> Query:
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        order, seq = decoded["o"], decoded["s"]
        if order not in ("asc", "desc") or not _is_position(seq):
            raise ValueError(order)
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise _bad(
            "cursor", "cursor is not one this server made; pass the `next` value as is"
        ) from None
    if order != query.order:
        raise _bad("cursor", "the cursor was made for the other order; keep the same parameters")
    if order == "desc":
        before = seq if query.before is None else min(seq, query.before)
        return replace(query, before=before)
    after = seq if query.after is None else max(seq, query.after)
    return replace(query, after=after)
