"""Translate a Filter and a Query into a SQLite WHERE clause with parameters.

It must agree with ``Filter.matches`` exactly; tests/unit/test_filter_sql.py checks that with
generated events and filters.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from tidings.envelope import Filter
from tidings.envelope.types import is_literal, pattern_regex
from tidings.store.base import CountQuery, Query

EVENT_COLUMNS = (
    "seq, id, type, source, subject, time_us, received_at_us, trace_id, idempotency_key, "
    "data, metadata, tenant"
)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def regexp(pattern: str, value: str | None) -> bool:
    """SQLite's ``value REGEXP pattern`` for type patterns (``pattern`` is a type pattern)."""
    return value is not None and pattern_regex(pattern).match(value) is not None


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


def _json_path(path: tuple[str, ...]) -> str:
    return "$" + "".join(f'."{segment}"' for segment in path)


def _value_condition(column: str, path: str, value: Any) -> tuple[str, list[Any]]:
    """One scalar equality with the JSON type checked, as Python compares them."""
    if value is None:
        return f"json_type({column}, ?) = 'null'", [path]
    if isinstance(value, bool):
        return f"json_type({column}, ?) = ?", [path, "true" if value else "false"]
    if isinstance(value, int | float):
        return _number_condition(column, path, value)
    # json_extract() ends a string at a NUL character, so compare the JSON text instead: the
    # column was written by orjson, which writes an equal string the same way.
    return f"({column} -> ?) = ?", [path, orjson.dumps(value).decode()]


def _number_condition(column: str, path: str, value: float) -> tuple[str, list[Any]]:
    """Exact numeric equality, integer or real, as Python has it (5 == 5.0, never True == 1).

    SQLite compares integers with reals exactly, but json_extract() turns an integer beyond
    64 bits into a rounded real, and Python's sqlite3 cannot bind such an integer: those
    compare by their JSON text.
    """
    ors: list[str] = []
    params: list[Any] = []
    in_range = isinstance(value, float) or _INT64_MIN <= value <= _INT64_MAX
    if in_range or float(value) == value:
        ors.append(
            f"((json_type({column}, ?) = 'real' OR (json_type({column}, ?) = 'integer'"
            f" AND typeof(json_extract({column}, ?)) = 'integer'))"
            f" AND json_extract({column}, ?) = ?)"
        )
        params.extend([path, path, path, path, value if in_range else float(value)])
    integral = isinstance(value, int) or value.is_integer()
    if integral and not _INT64_MIN <= value <= _INT64_MAX:
        ors.append(f"(json_type({column}, ?) = 'integer' AND ({column} -> ?) = ?)")
        params.extend([path, path, str(int(value))])
    return "(" + " OR ".join(ors) + ")", params


_EXACT_DIGITS = 10**15  # below it, orjson writes an integral float as its digits and ".0"


def _tokens(key: str, value: Any) -> set[str] | None:
    """Texts of which one appears in any stored document whose member ``key`` holds ``value``.

    Documents are stored as orjson wrote them (every write path encodes with orjson; a copy
    between stores keeps the text): compact, so a member is its key's JSON text, a colon and
    its value's JSON text. An equal string is written as ``orjson.dumps(value)``; an equal
    integer as its digits; an equal float as orjson writes that float (for an integral one
    below ``_EXACT_DIGITS``: the digits and ".0"); true, false and null as themselves.
    """
    member = orjson.dumps(key).decode() + ":"
    if value is None or isinstance(value, bool):
        return {member + orjson.dumps(value).decode()}
    if isinstance(value, str):
        try:
            return {member + orjson.dumps(value).decode()}
        except orjson.JSONEncodeError:  # a lone surrogate: leave it to the exact condition
            return None
    if isinstance(value, int | float):
        if (isinstance(value, int) or value.is_integer()) and abs(value) < _EXACT_DIGITS:
            # the digits, perhaps followed by more (a longer number, ".0"): the exact
            # condition decides; one short text is cheaper to look for than every ending
            return {member + str(int(value))} | ({member + "-0"} if value == 0 else set())
        tokens = set()  # large or fractional: the number's text alone, wherever it is
        if isinstance(value, int) or value.is_integer():
            tokens.add(str(abs(int(value))))
        try:
            if float(value) == value:
                tokens.add(orjson.dumps(abs(float(value))).decode())
        except OverflowError:  # an integer no float equals
            pass
        return tokens
    return None


def _prefilter(column: str, key: str, values: tuple[Any, ...]) -> tuple[str, list[str]] | None:
    """A cheap necessary condition (substring search, in C) ahead of the JSON functions.

    A page with a ``data.<path>`` filter walks the log by seq; calling json_extract() on every
    row costs several times more than finding that the member's text is not in the row.
    """
    tokens: set[str] = set()
    for value in values:
        found = _tokens(key, value)
        if found is None:
            return None
        tokens |= found
    # a text containing another is implied by it
    needed = sorted(t for t in tokens if not any(o != t and o in t for o in tokens))
    sql = " OR ".join(f"instr({column}, ?) > 0" for _ in needed)
    return f"({sql})", needed


def filter_clause(flt: Filter) -> tuple[list[str], list[Any]]:
    """SQL conditions (to AND together) and their parameters for ``flt``."""
    conditions: list[str] = []
    params: list[Any] = []
    if flt.types:
        literals = [p for p in flt.types if is_literal(p)]
        patterns = [p for p in flt.types if not is_literal(p)]
        parts = []
        if literals:
            parts.append(f"type IN ({_placeholders(len(literals))})")
            params.extend(literals)
        for pattern in patterns:
            parts.append("type REGEXP ?")
            params.append(pattern)
        conditions.append("(" + " OR ".join(parts) + ")")
    if flt.sources:
        conditions.append(f"source IN ({_placeholders(len(flt.sources))})")
        params.extend(flt.sources)
    if flt.exclude_sources:
        conditions.append(f"source NOT IN ({_placeholders(len(flt.exclude_sources))})")
        params.extend(flt.exclude_sources)
    if flt.subjects:
        conditions.append(f"subject IN ({_placeholders(len(flt.subjects))})")
        params.extend(flt.subjects)
    if flt.trace_ids:
        conditions.append(f"trace_id IN ({_placeholders(len(flt.trace_ids))})")
        params.extend(flt.trace_ids)
    for condition in flt.fields:
        column = "data" if condition.root == "data" else "metadata"
        path = _json_path(condition.path)
        ors = []
        prefilter = _prefilter(column, condition.path[-1], condition.values)
        if prefilter is not None:
            params.extend(prefilter[1])
        for value in condition.values:
            sql, values = _value_condition(column, path, value)
            ors.append(sql)
            params.extend(values)
        exact = "(" + " OR ".join(ors) + ")"
        conditions.append(exact if prefilter is None else f"({prefilter[0]} AND {exact})")
    return conditions, params


def where_clause(tenant: str, query: Query) -> tuple[str, list[Any]]:
    """The WHERE condition (without the keyword) of a query's filter and bounds."""
    conditions, filter_params = filter_clause(query.filter)
    where = ["tenant = ?"]
    params: list[Any] = [tenant]
    bounds = (
        ("received_at_us >= ?", query.since_us),
        ("received_at_us <= ?", query.until_us),
        ("time_us >= ?", query.time_since_us),
        ("time_us <= ?", query.time_until_us),
        ("seq > ?", query.after),
        ("seq < ?", query.before),
    )
    for sql, value in bounds:
        if value is not None:
            where.append(sql)
            params.append(value)
    where.extend(conditions)
    params.extend(filter_params)
    return " AND ".join(where), params


MERGED_TYPES = 8  # at most this many type literals are read one by one and merged


def query_sql(tenant: str, query: Query) -> tuple[str, list[Any]]:
    """The full SELECT for a history query."""
    order = "ASC" if query.order == "asc" else "DESC"
    limit = max(query.limit, 0)  # SQLite reads a negative LIMIT as "no limit"
    literals = list(dict.fromkeys(query.filter.types))
    if 2 <= len(literals) <= MERGED_TYPES and all(is_literal(t) for t in literals):
        # One type at a time walks the (tenant, type, seq) index in seq order and stops at
        # the limit; `type IN (...)` would read every match of every type, then sort them.
        parts, params = [], []
        for literal in literals:
            one = replace(query, filter=replace(query.filter, types=(literal,)))
            where, values = where_clause(tenant, one)
            parts.append(
                f"SELECT * FROM (SELECT {EVENT_COLUMNS} FROM events WHERE {where} "
                f"ORDER BY seq {order} LIMIT ?)"
            )
            params.extend([*values, limit])
        return " UNION ALL ".join(parts) + f" ORDER BY seq {order} LIMIT ?", [*params, limit]
    where, params = where_clause(tenant, query)
    # Named index choice: ordering by seq within a tenant; SQLite picks a filter index when
    # it is more selective.
    sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE {where} ORDER BY seq {order} LIMIT ?"
    params.append(limit)
    return sql, params


_GROUP_COLUMNS = {None: "NULL", "type": "type", "source": "source", "subject": "subject"}


def count_sql(tenant: str, counts: CountQuery) -> tuple[str, list[Any]]:
    """The SELECT of bucket counts: (bucket start, key, count) rows in start, key order."""
    where, params = where_clause(tenant, counts.query)
    key = _GROUP_COLUMNS[counts.by]
    # received_at_us >= origin_us (0 <= origin < width), so integer division floors here
    bucket = "(received_at_us - ?) / ? * ? + ?"
    sql = (
        f"SELECT {bucket} AS bucket, {key} AS key, COUNT(*) FROM events WHERE {where} "
        "GROUP BY bucket, key ORDER BY bucket, key"
    )
    origin, width = counts.origin_us, counts.width_us
    return sql, [origin, width, width, origin, *params]
