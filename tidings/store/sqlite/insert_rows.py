"""Several events in one ``INSERT`` statement: the writer's way of storing a run of rows.

``executemany`` steps its statement once per row, giving up the GIL and taking it back around
every step, and binds each row's ``None`` columns through the adapter lookup; together that was
about a third of the writer's CPU per event under 100-event batches. One statement with a
multi-row ``VALUES`` does a run's B-tree work in a single step, without Python in between.

A run of up to ``MAX_ROWS`` rows is one statement; a longer one is cut into statements of
``MAX_ROWS`` and one of what is left. (Cutting every run into powers of two instead, so that
eight statements serve every size, cost 7% more per row for 100-event batches: each statement
opens and positions a cursor on the table and on every index.) The writer's connection keeps
``STATEMENT_CACHE`` prepared statements, room for every size besides its other statements, so
a size that recurs is parsed once.

Parameters are numbered: ``?1`` is the group's ``received_at``, shared by every row, then
``COLUMNS`` per row, in order. Rows written here never carry an idempotency or deduplication
key (those take the path that looks for the earlier row first), so both columns are the
literal ``NULL``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cache

from tidings.envelope import Candidate

MAX_ROWS = 128  # 1 + 9 * 128 parameters, far below SQLite's limit of 32,766
COLUMNS = 9  # bound per row; received_at is ?1, the two keys are NULL
STATEMENT_CACHE = MAX_ROWS + 128  # every insert size, and as many other statements


@cache
def insert_rows_sql(count: int) -> str:
    """The ``INSERT`` of ``count`` rows (1..``MAX_ROWS``)."""
    if not 0 < count <= MAX_ROWS:
        raise ValueError(f"an insert holds 1 to {MAX_ROWS} rows, not {count}")
    rows = []
    for row in range(count):
        p = [f"?{2 + row * COLUMNS + column}" for column in range(COLUMNS)]
        # tenant, id, type, source, subject, time_us, received_at_us, trace_id, the two keys,
        # data, metadata
        rows.append(f"({', '.join(p[:6])}, ?1, {p[6]}, NULL, NULL, {p[7]}, {p[8]})")
    return (
        "INSERT INTO events (tenant, id, type, source, subject, time_us, received_at_us, "
        "trace_id, idempotency_key, dedupe_key, data, metadata) VALUES " + ", ".join(rows)
    )


def chunk_sizes(count: int) -> Iterator[int]:
    """How a run of ``count`` rows is cut into statements: ``MAX_ROWS`` at a time."""
    while count > 0:
        size = min(count, MAX_ROWS)
        yield size
        count -= size


def row_params(received_us: int, run: Sequence[Candidate]) -> list[object]:
    """The parameters of ``insert_rows_sql(len(run))``, in the order of its numbers.

    Every candidate in ``run`` has neither an idempotency nor a deduplication key.
    """
    params: list[object] = [received_us]
    for c in run:
        params += (
            c.tenant,
            c.id,
            c.type,
            c.source,
            c.subject,
            c.time_us,
            c.trace_id,
            c.data_json,
            c.metadata_json,
        )
    return params
