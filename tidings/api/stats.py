"""Event counts per hour or day, split by type, source or subject, following the filters."""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Request
from fastapi import Query as Q
from starlette.responses import Response

from tidings import counts
from tidings.api.events import hub_of
from tidings.api.params import parse_query
from tidings.api.responses import json_response
from tidings.api.schemas import error_responses
from tidings.api.tenancy import query_tenant
from tidings.envelope.timefmt import format_us, now_us
from tidings.errors import TidingsError
from tidings.store import CountQuery, GroupBy

router = APIRouter(tags=["events"])

COUNT_PARAMS = (
    *("since", "until", "time_since", "time_until", "bucket", "by", "utc_offset", "top"),
    "tenant",
)
GROUPS: tuple[GroupBy, ...] = ("type", "source", "subject")
MAX_TOP = 100


def _bad(name: str, message: str) -> TidingsError:
    return TidingsError(
        400, "invalid_parameter", message, details=[{"loc": ["query", name], "msg": message}]
    )


def _choice(
    request: Request, name: str, choices: tuple[str, ...], default: str | None
) -> str | None:
    value = request.query_params.get(name) or default
    if value is not None and value not in choices:
        raise _bad(name, f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _number(request: Request, name: str, low: int, high: int, default: int) -> int:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, f"{name} must be an integer, not {value!r}") from None
    if not low <= number <= high:
        raise _bad(name, f"{name} must be between {low} and {high}")
    return number


@router.get(
    "/v1/stats/counts",
    summary="Event counts per hour or day, by type, source or subject (charts, heatmaps)",
    responses=error_responses(400),
    openapi_extra={
        "description": (
            "Counts the events the filters select (`type`, `source`, `exclude_source`, "
            "`subject`, `trace_id`, `data.<path>`, `metadata.<path>`, `since`, `until`, "
            "`time_since`, `time_until`) in buckets of `received_at`. `bucket` is `hour` "
            "(default; the last 48 when `since` is not given) or `day` (the last 30), aligned "
            "to the zone `utc_offset` minutes east of UTC (default 0). `by` splits each bucket "
            "by `type`, `source` or `subject`: the `top` keys (default 10, at most 100) by "
            "total get a series each, the rest one series with `other: true`. Every series "
            "has one count per bucket, zeros included."
        )
    },
)
async def count_events(
    request: Request,
    bucket: str | None = Q(None, description="`hour` (default) or `day`"),
    by: str | None = Q(None, description="`type`, `source` or `subject`"),
    utc_offset: str | None = Q(None, description="minutes east of UTC that buckets align to"),
    top: str | None = Q(None, description="series kept before the rest is folded (1-100)"),
    since: str | None = Q(None, description="received at or after (ISO 8601)"),
    until: str | None = Q(None, description="received at or before (ISO 8601); default now"),
    tenant: str | None = Q(None, description="root only: count in this tenant"),
) -> Response:
    hub = hub_of(request)
    owner = await query_tenant(request)
    kind = _choice(request, "bucket", ("hour", "day"), "hour") or "hour"
    group = _choice(request, "by", GROUPS, None)
    offset = _number(
        request, "utc_offset", -counts.MAX_UTC_OFFSET_MIN, counts.MAX_UTC_OFFSET_MIN, 0
    )
    keep = _number(request, "top", 1, MAX_TOP, 10)
    query = parse_query(request.query_params, allowed=COUNT_PARAMS, default_limit=None)
    width = counts.WIDTHS[kind]
    until_us = query.until_us if query.until_us is not None else now_us()
    since_us = query.since_us
    if since_us is None:
        since_us = counts.default_since(until_us, width, offset, counts.DEFAULT_BUCKETS[kind])
    if since_us > until_us:
        raise _bad("since", "since must not be after until")
    grid = counts.Grid.covering(since_us, until_us, width, offset)
    if grid.size > counts.MAX_BUCKETS:
        raise _bad(
            "since",
            f"since..until spans {grid.size} {kind}s; at most {counts.MAX_BUCKETS} are counted",
        )
    selection = replace(query, since_us=since_us, until_us=until_us)
    count_query = CountQuery(selection, width, grid.origin_us, _group(group))
    rows = await hub.store.count_buckets(owner, count_query)
    body = {
        "bucket": kind,
        "by": group,
        "utc_offset": offset,
        "since": format_us(since_us),
        "until": format_us(until_us),
        **counts.series(rows, grid, keep),
    }
    return json_response(body)


def _group(value: str | None) -> GroupBy | None:
    for group in GROUPS:
        if value == group:
            return group
    return None
