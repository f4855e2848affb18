"""Several events in one INSERT: the statement sizes, the SQL and its parameters."""

from __future__ import annotations

import sqlite3

import pytest

from tidings.envelope import Limits, PublishContext, candidates_from_json
from tidings.store.sqlite.insert_rows import MAX_ROWS, chunk_sizes, insert_rows_sql, row_params
from tidings.store.sqlite.store import migrate


@pytest.mark.parametrize(
    ("count", "sizes"),
    [
        (1, [1]),
        (100, [100]),
        (MAX_ROWS, [MAX_ROWS]),
        (MAX_ROWS + 1, [MAX_ROWS, 1]),
        (1000, [MAX_ROWS] * 7 + [104]),
    ],
)
def test_a_run_is_one_statement_up_to_max_rows(count: int, sizes: list[int]) -> None:
    assert list(chunk_sizes(count)) == sizes


def test_no_rows_is_no_statement() -> None:
    assert list(chunk_sizes(0)) == []


@pytest.mark.parametrize("count", [0, MAX_ROWS + 1])
def test_a_statement_holds_one_to_max_rows(count: int) -> None:
    with pytest.raises(ValueError, match="1 to 128 rows"):
        insert_rows_sql(count)


def test_the_rows_are_stored_in_order_with_the_shared_stamp_and_no_keys() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    body = [
        {"type": "a.b", "source": "s", "subject": "x", "data": {"n": 1}},
        {"type": "c.d", "data": [2], "metadata": {"m": True}},
        {"type": "e.f", "subject": None},
    ]
    run, _ = candidates_from_json(body, PublishContext(tenant="t1"), Limits())

    cursor = conn.execute(insert_rows_sql(len(run)), row_params(1234, run))

    rows = conn.execute(
        "SELECT seq, tenant, id, type, source, subject, time_us, received_at_us, trace_id, "
        "idempotency_key, dedupe_key, data, metadata FROM events ORDER BY seq"
    ).fetchall()
    assert cursor.lastrowid == rows[-1][0] == 3
    assert rows == [
        (
            seq,
            "t1",
            c.id,
            c.type,
            c.source,
            c.subject,
            c.time_us,
            1234,
            c.trace_id,
            None,
            None,
            c.data_json,
            c.metadata_json,
        )
        for seq, c in enumerate(run, start=1)
    ]
