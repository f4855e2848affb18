"""The SQLite translation of a filter selects exactly the events ``Filter.matches`` accepts.

Events and filters are generated; the events go into an in-memory table shaped like the
events table, and the rows the SQL selects are compared with the events ``matches`` keeps.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidings.envelope import Event, Filter, parse_filter
from tidings.store.base import Query
from tidings.store.sqlite.connection import connect
from tidings.store.sqlite.filter_sql import filter_clause, query_sql
from tidings.store.sqlite.store import migrate

SCHEMA = (files("tidings.store.sqlite") / "migrations" / "0001_events.sql").read_text()
KEYS = ["a", "b", "é k"]
TRACES = ["4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"]
SEGMENTS = ["a", "b", "c"]

# A shared pool of scalars that are equal, or nearly, across JSON types (1, 1.0, true, "1"),
# that SQL might treat specially (NUL, quotes, LIKE wildcards) or that sit at the edge of
# 64-bit integers. Data and filters both draw from it, so that they often meet.
POOL: list[Any] = [
    *(None, True, False, 0, 1, -1, 0.0, -0.0, 1.0, 2.5, 1e16, 9.223372036854776e18),
    *(2**63 - 1, -(2**63), 2**63, 2**64 - 1),
    *("", "1", "1.0", "true", "null", "x", "X", "a", "a\x00b", "é", " x", "%", "_", "'", '"'),
]
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=5)
ANY_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
SCALAR = st.one_of(st.sampled_from(POOL), st.sampled_from(POOL), ANY_SCALAR)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=2), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=5,
)
DOCUMENT = st.dictionaries(st.sampled_from(KEYS), VALUE, min_size=1, max_size=3)

EVENT = st.fixed_dictionaries(
    {
        "type": st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3).map(".".join),
        "source": st.sampled_from(["api", "mqtt", "st"]),
        "subject": st.one_of(st.none(), st.sampled_from(["s1", "s2", ""])),
        "data": st.one_of(DOCUMENT, DOCUMENT, VALUE),
        "metadata": DOCUMENT,
        "trace_id": st.sampled_from(TRACES),
    }
)

PATTERN = st.builds(
    lambda head, hashed: ".".join([*head, "#"] if hashed else head) or "#",
    st.lists(st.sampled_from([*SEGMENTS, "*"]), max_size=3),
    st.booleans(),
)
NAMES = st.lists(st.sampled_from(["api", "mqtt", "st", "s1", "s2", "other"]), min_size=1)
PATH = st.lists(st.sampled_from(KEYS), min_size=1, max_size=2).map(".".join)


def _paths(value: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (path, scalar) reachable through objects, as a data filter can address them."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif prefix and not isinstance(value, list):
        yield prefix, value


def _as_query_text(value: Any) -> str:
    """How a client would write ``value`` in a query string."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def make_event(seq: int, spec: dict[str, Any], tenant: str = "default") -> Event:
    return Event(
        seq=seq,
        id=f"id-{seq}",
        type=spec["type"],
        source=spec["source"],
        subject=spec["subject"],
        time_us=seq,
        received_at_us=seq,
        trace_id=spec.get("trace_id", TRACES[0]),
        idempotency_key=None,
        data_json=orjson.dumps(spec["data"]).decode(),
        metadata_json=orjson.dumps(spec["metadata"]).decode(),
        tenant=tenant,
    )


def open_table(events: list[Event]) -> sqlite3.Connection:
    conn = connect(":memory:")
    conn.executescript(SCHEMA)
    conn.executemany(
        "INSERT INTO events (seq, tenant, id, type, source, subject, time_us, received_at_us,"
        " trace_id, idempotency_key, dedupe_key, data, metadata)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
        [
            (
                e.seq,
                e.tenant,
                e.id,
                e.type,
                e.source,
                e.subject,
                e.time_us,
                e.received_at_us,
                e.trace_id,
                e.idempotency_key,
                e.data_json,
                e.metadata_json,
            )
            for e in events
        ],
    )
    return conn


def selected(conn: sqlite3.Connection, flt: Filter) -> set[int]:
    conditions, params = filter_clause(flt)
    where = " AND ".join(conditions) or "1"
    return {row[0] for row in conn.execute(f"SELECT seq FROM events WHERE {where}", params)}


def assert_sql_agrees(events: list[Event], flt: Filter) -> None:
    conn = open_table(events)
    try:
        expected = {e.seq for e in events if flt.matches(e)}
        assert selected(conn, flt) == expected, flt
    finally:
        conn.close()


@st.composite
def filter_params(draw: st.DrawFn, specs: list[dict[str, Any]]) -> dict[str, Any]:
    """Filter parameters, often naming paths and values found in the events, so some match."""
    found = [
        (f"{root}.{'.'.join(path)}", leaf)
        for spec in specs
        for root in ("data", "metadata")
        for path, leaf in _paths(spec[root])
    ]
    params: dict[str, Any] = {}
    # hypothesis favours small integers: "== top" keeps each criterion to about one in four
    if draw(st.integers(0, 3)) == 3:
        params["type"] = draw(st.lists(PATTERN, min_size=1, max_size=3))
    for name in ("source", "exclude_source", "subject"):
        if draw(st.integers(0, 3)) == 3:
            params[name] = draw(NAMES)
    if draw(st.integers(0, 3)) == 3:
        params["trace_id"] = draw(st.lists(st.sampled_from([*TRACES, "other"]), min_size=1))
    for _ in range(draw(st.integers(0, 2))):
        if found and draw(st.booleans()):
            key, leaf = draw(st.sampled_from(found))
        else:
            key = f"{draw(st.sampled_from(['data', 'metadata']))}.{draw(PATH)}"
            leaf = draw(SCALAR)
        if not isinstance(leaf, str) and draw(st.booleans()):
            params[key] = leaf  # a JSON filter object's scalar
            continue
        others = st.one_of(st.sampled_from(POOL).map(_as_query_text), TEXT.map(_as_query_text))
        values = draw(st.lists(others, max_size=2))
        values.insert(draw(st.integers(0, len(values))), _as_query_text(leaf))
        params[key] = ",".join(values)
    return params


def _is_addressable(params: dict[str, Any]) -> bool:
    """Whether every comma list names a value: one of only commas and spaces is refused."""
    values = [v for v in params.values() if isinstance(v, str)]
    return all(any(part.strip() for part in v.split(",")) for v in values)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.lists(EVENT, min_size=2, max_size=6))
def test_sql_selects_exactly_the_events_that_match(
    data: st.DataObject, specs: list[dict[str, Any]]
) -> None:
    events = [make_event(seq, spec) for seq, spec in enumerate(specs, start=1)]
    params = data.draw(filter_params(specs).filter(_is_addressable))
    assert_sql_agrees(events, parse_filter(params, location="filter"))


@pytest.mark.parametrize("root", ["data", "metadata"])
def test_sql_agrees_for_every_pair_of_pooled_scalars(root: str) -> None:
    base = {"type": "a", "source": "api", "subject": None, "data": {}, "metadata": {}}
    values = [*POOL, [], {}, [1], {"k": 1}]
    events = [make_event(i, base | {root: {"k": v}}) for i, v in enumerate(values, start=1)]
    events.append(make_event(len(events) + 1, base))  # the path is missing
    conn = open_table(events)
    try:
        for wanted in POOL:
            for param in ({f"{root}.k": _as_query_text(wanted)}, {f"{root}.k": wanted}):
                if not _is_addressable(param):
                    continue
                flt = parse_filter(param, location="filter")
                expected = {e.seq for e in events if flt.matches(e)}
                assert selected(conn, flt) == expected, param
    finally:
        conn.close()


def _one(params: dict[str, Any], *specs: dict[str, Any]) -> None:
    base = {"type": "a", "source": "api", "subject": None, "data": {}, "metadata": {}}
    events = [make_event(i, base | spec) for i, spec in enumerate(specs, start=1)]
    assert_sql_agrees(events, parse_filter(params, location="filter"))


@pytest.mark.parametrize(
    ("params", "specs"),
    [
        ({"data.a": "5"}, [{"data": {"a": 5}}, {"data": {"a": "5"}}, {"data": {"a": 5.0}}]),
        ({"data.a": "true"}, [{"data": {"a": True}}, {"data": {"a": 1}}, {"data": {"a": "true"}}]),
        ({"data.a": "1"}, [{"data": {"a": True}}, {"data": {"a": 1}}]),
        ({"data.a": "null"}, [{"data": {"a": None}}, {"data": {}}, {"data": {"a": "null"}}]),
        ({"data.a": "x"}, [{"data": {"a": "a\x00b"}}, {"data": {"a": "x\x00"}}]),
        ({"data.a": "x\x00y"}, [{"data": {"a": "x\x00y"}}, {"data": {"a": "x\x00z"}}]),
        ({"data.a": "1"}, [{"data": {"a": [1]}}, {"data": {"a": {"b": 1}}}, {"data": [1]}]),
        ({"data.a.b": "1"}, [{"data": {"a": {"b": 1}}}, {"data": {"a": [{"b": 1}]}}]),
        ({"data.a": str(2**64 - 1)}, [{"data": {"a": 2**64 - 1}}, {"data": {"a": 2**64 - 2}}]),
        ({"data.a": str(2**63)}, [{"data": {"a": 2**63}}, {"data": {"a": float(2**63)}}]),
        ({"data.a": str(2**63 - 1)}, [{"data": {"a": 2**63 - 1}}, {"data": {"a": 2**63}}]),
        ({"data.a": "-9223372036854775808"}, [{"data": {"a": -(2**63)}}]),
        # the substring prefilter: values as orjson writes them, inside other text or not
        ({"data.a": 'q"u\\o\u00e9\n\u2028'}, [{"data": {"a": 'q"u\\o\u00e9\n\u2028'}}]),
        ({"data.a": "é,😀,ü"}, [{"data": {"a": "é"}}, {"data": {"a": "😀"}}, {"data": {"a": "u"}}]),
        ({"data.a": "x\x01y"}, [{"data": {"a": "x\x01y"}}, {"data": {"a": "x\\u0001y"}}]),
        ({"data.a": "1"}, [{"data": {"a": 1.0}}, {"data": {"a": -1}}, {"data": {"a": "1"}}]),
        ({"data.a": "1.0"}, [{"data": {"a": 1}}, {"data": {"a": True}}, {"data": {"a": "1.0"}}]),
        ({"data.a": "-1"}, [{"data": {"a": -1.0}}, {"data": {"a": 1}}, {"data": {"a": -1}}]),
        ({"data.a": "0"}, [{"data": {"a": -0.0}}, {"data": {"a": 0}}, {"data": {"a": False}}]),
        ({"data.a": "-0.0"}, [{"data": {"a": 0}}, {"data": {"a": 0.0}}]),
        ({"data.a": "1e16"}, [{"data": {"a": 10**16}}, {"data": {"a": 1e16}}]),
        ({"data.a": "10000000000000000"}, [{"data": {"a": 1e16}}, {"data": {"a": 10**16}}]),
        ({"data.a": "123456789012345678"}, [{"data": {"a": 1.2345678901234568e17}}]),
        ({"data.a": "2.5e-7"}, [{"data": {"a": 2.5e-7}}, {"data": {"a": -2.5e-7}}]),
        ({"data.a": "-2.5"}, [{"data": {"a": -2.5}}, {"data": {"a": 2.5}}]),
        ({"data.a": "false"}, [{"data": {"a": False}}, {"data": {"a": 0}}, {"data": {"b": False}}]),
        ({"data.a": "7"}, [{"data": {"a": 8, "b": 7}}, {"data": {"a": 17}}, {"data": {"a": 7}}]),
        ({"type": "a.#"}, [{"type": "a"}, {"type": "a.b.c"}, {"type": "b.a"}]),
        ({"type": "*.b"}, [{"type": "a.b"}, {"type": "b"}, {"type": "a.b.b"}]),
        ({"subject": "s1"}, [{"subject": None}, {"subject": "s1"}, {"subject": ""}]),
        ({"exclude_source": "api"}, [{"source": "api"}, {"source": "x"}]),
    ],
)
def test_sql_agrees_on_the_edge_cases(params: dict[str, Any], specs: list[dict[str, Any]]) -> None:
    _one(params, *specs)


def test_a_data_condition_searches_the_text_before_calling_the_json_functions() -> None:
    conditions, params = filter_clause(parse_filter({"data.room.level": "17,x"}))
    assert conditions[0].startswith("((instr(data, ?) > 0 OR instr(data, ?) > 0 OR"), conditions
    # the member's text: "17" as a string, 17 as a number (then 17.0 too), "x"
    assert params[:3] == ['"level":"17"', '"level":"x"', '"level":17']


def test_an_empty_filter_has_no_conditions() -> None:
    assert filter_clause(Filter()) == ([], [])


def test_query_sql_keeps_to_the_tenant_and_applies_the_filter() -> None:
    spec = {"type": "a.b", "source": "api", "subject": None, "data": {"k": 1}, "metadata": {}}
    events = [
        make_event(1, spec),
        make_event(2, spec, tenant="other"),
        make_event(3, spec | {"data": {"k": 2}}),
        make_event(4, spec),
    ]
    conn = open_table(events)
    try:
        flt = parse_filter({"type": "a.*", "data.k": "1"})
        sql, params = query_sql("default", Query(filter=flt, order="asc", limit=10))
        assert [row[0] for row in conn.execute(sql, params)] == [1, 4]
        sql, params = query_sql("default", Query(filter=flt, order="desc", limit=1))
        assert [row[0] for row in conn.execute(sql, params)] == [4]
    finally:
        conn.close()


def test_a_trace_id_lookup_searches_its_index_instead_of_scanning_the_tenant() -> None:
    conn = connect(":memory:")
    try:
        migrate(conn)
        flt = parse_filter({"trace_id": TRACES[0], "type": "a.b"})
        sql, params = query_sql("default", Query(filter=flt))
        plan = " ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    finally:
        conn.close()
    assert "events_by_trace (tenant=? AND trace_id=?)" in plan, plan


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(EVENT, min_size=1, max_size=12),
    st.lists(st.sampled_from(["a", "b", "a.b", "c.a", "b.b.b", "x"]), min_size=2, max_size=4),
    st.sampled_from(["asc", "desc"]),
    st.integers(0, 5),
    st.one_of(st.none(), st.integers(0, 12)),
    st.one_of(st.none(), NAMES),
)
def test_a_list_of_type_literals_merges_one_page_per_type(
    specs: list[dict[str, Any]],
    types: list[str],
    order: str,
    limit: int,
    after: int | None,
    sources: list[str] | None,
) -> None:
    events = [make_event(seq, spec) for seq, spec in enumerate(specs, start=1)]
    events.append(make_event(len(events) + 1, specs[0], tenant="other"))
    params: dict[str, Any] = {"type": types} | ({"source": sources} if sources else {})
    flt = parse_filter(params)
    query = Query(filter=flt, order="asc" if order == "asc" else "desc", limit=limit, after=after)
    sql, values = query_sql("default", query)
    assert (" UNION ALL " in sql) == (len(set(types)) > 1)
    matching = [
        e.seq
        for e in events
        if e.tenant == "default" and flt.matches(e) and (after is None or e.seq > after)
    ]
    wanted = (matching if order == "asc" else matching[::-1])[:limit]
    conn = open_table(events)
    try:
        assert [row[0] for row in conn.execute(sql, values)] == wanted
    finally:
        conn.close()
