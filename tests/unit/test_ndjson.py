"""Bulk publishing's input: NDJSON lines into batches, bad lines reported by number."""

from __future__ import annotations

from tidings.cli.ndjson import BadLine, Batch, failed_items, read_batches


def test_lines_are_grouped_by_count_and_by_size_and_bad_ones_named_in_order() -> None:
    source = [
        b'{"type": "a.one"}\n',
        b"\n",
        b"{not json\n",
        b"[1, 2]\n",
        b'{"type": "a.four"}\n',
        b'{"type": "a.five"}\n',
    ]
    items = list(read_batches(source, size=2))
    assert [type(item) for item in items] == [BadLine, BadLine, Batch, Batch]
    bad = [item for item in items if isinstance(item, BadLine)]
    assert [b.number for b in bad] == [3, 4]
    assert bad[0].reason.startswith("not valid JSON")
    assert bad[1].reason == "not a JSON object (one event per line)"
    batches = [item for item in items if isinstance(item, Batch)]
    assert [[line.number for line in b.lines] for b in batches] == [[1, 5], [6]]
    assert batches[0].lines[0].event == {"type": "a.one"}
    assert sum(b.consumed for b in batches) == sum(len(raw) for raw in source)
    by_size = list(read_batches(source, size=100, max_bytes=30))
    assert [[line.number for line in b.lines] for b in by_size if isinstance(b, Batch)] == [
        [1],
        [5],
        [6],
    ]


def test_refusals_map_back_onto_the_batch_positions_they_name() -> None:
    details = [
        {"loc": ["body", 1, "type"], "msg": "Field required"},
        {"loc": ["body", 1, "time"], "msg": "bad time"},
        {"loc": ["body", 7], "msg": "out of range"},
        {"loc": ["query", "x"], "msg": "not about an event"},
        "not a detail",
    ]
    assert failed_items(details, 3) == {1: ["type: Field required", "time: bad time"]}
