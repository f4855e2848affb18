"""Export against a real server: NDJSON and CSV, filters, order, and a large streamed export."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.server import ServerProcess, ServerStore

Event = dict[str, Any]
CSV_COLUMNS = [
    "seq", "id", "type", "source", "subject", "time", "received_at", "trace_id",
    "idempotency_key", "data", "metadata",
]  # fmt: skip


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, server_store: ServerStore
) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("export") / "data", store=server_store).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60.0) as http:
        yield http


@pytest.fixture(scope="module")
def sample(client: httpx.Client) -> list[Event]:
    """40 varied events of one source, as stored, oldest first."""
    source = f"export-{uuid.uuid4().hex[:8]}"
    items = [
        {
            "type": ["door.opened", "door.closed", "light.on", "light.off"][n % 4],
            "source": source,
            "subject": None if n % 3 == 0 else f"unit-{n % 3}",
            "data": {"n": n, "text": 'quote " comma , newline \n done', "kind": ["a", "b"][n % 2]},
            "metadata": {"index": n},
            "idempotency_key": f"{source}-{n}" if n % 5 == 0 else None,
        }
        for n in range(40)
    ]
    assert client.post("/v1/events", json=items).status_code == 201
    answer = client.get("/v1/events", params={"source": source, "order": "asc", "limit": 1000})
    events: list[Event] = answer.json()["events"]
    assert len(events) == 40
    return events


def ndjson(answer: httpx.Response) -> list[Event]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    assert answer.text == "" or answer.text.endswith("\n")
    return [json.loads(line) for line in answer.text.splitlines()]


def rows(answer: httpx.Response) -> list[dict[str, str]]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    reader = csv.reader(io.StringIO(answer.text, newline=""))
    header = next(reader)
    assert header == CSV_COLUMNS
    return [dict(zip(header, row, strict=True)) for row in reader]


def test_ndjson_is_the_default_with_every_matching_event_oldest_first(
    client: httpx.Client, sample: list[Event]
) -> None:
    answer = client.get("/v1/events/export", params={"source": sample[0]["source"]})
    assert "attachment" in answer.headers["content-disposition"]
    assert ndjson(answer) == sample


def test_ndjson_lines_are_the_same_events_as_the_history_api(
    client: httpx.Client, sample: list[Event]
) -> None:
    answer = client.get(
        "/v1/events/export", params={"source": sample[0]["source"], "format": "ndjson"}
    )
    lines = ndjson(answer)
    for line, event in zip(lines, sample, strict=True):
        assert line == event
        assert set(line) == set(CSV_COLUMNS)


def test_csv_has_a_header_and_one_row_per_event_with_json_data(
    client: httpx.Client, sample: list[Event]
) -> None:
    answer = client.get(
        "/v1/events/export", params={"source": sample[0]["source"], "format": "csv"}
    )
    assert answer.headers["content-disposition"].endswith('.csv"')
    table = rows(answer)
    assert len(table) == len(sample)
    for row, event in zip(table, sample, strict=True):
        assert int(row["seq"]) == event["seq"]
        for name in ("id", "type", "source", "time", "received_at", "trace_id"):
            assert row[name] == event[name], name
        assert row["subject"] == (event["subject"] or "")
        assert row["idempotency_key"] == (event["idempotency_key"] or "")
        assert json.loads(row["data"]) == event["data"]
        assert json.loads(row["metadata"]) == event["metadata"]


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"type": "door.*"}, lambda e: e["type"].startswith("door.")),
        ({"type": "light.on,door.closed"}, lambda e: e["type"] in ("light.on", "door.closed")),
        ({"subject": "unit-1"}, lambda e: e["subject"] == "unit-1"),
        ({"data.kind": "b"}, lambda e: e["data"]["kind"] == "b"),
        ({"metadata.index": "7,9"}, lambda e: e["metadata"]["index"] in (7, 9)),
    ],
    ids=["type pattern", "type list", "subject", "data", "metadata"],
)
def test_export_applies_the_filters(
    client: httpx.Client, sample: list[Event], params: dict[str, str], keep: Any
) -> None:
    expected = [e for e in sample if keep(e)]
    assert 0 < len(expected) < len(sample)
    base = {"source": sample[0]["source"], **params}
    assert ndjson(client.get("/v1/events/export", params=base)) == expected
    table = rows(client.get("/v1/events/export", params={**base, "format": "csv"}))
    assert [r["id"] for r in table] == [e["id"] for e in expected]


def test_export_honours_order_limit_and_seq_bounds(
    client: httpx.Client, sample: list[Event]
) -> None:
    source = sample[0]["source"]
    desc = ndjson(client.get("/v1/events/export", params={"source": source, "order": "desc"}))
    assert desc == sample[::-1]
    limited = ndjson(client.get("/v1/events/export", params={"source": source, "limit": 5}))
    assert limited == sample[:5]
    bounds = {"source": source, "after": sample[9]["seq"], "before": sample[20]["seq"]}
    assert ndjson(client.get("/v1/events/export", params=bounds)) == sample[10:20]


def test_an_export_that_matches_nothing_is_empty(client: httpx.Client) -> None:
    assert ndjson(client.get("/v1/events/export", params={"source": "nobody-at-all"})) == []
    answer = client.get("/v1/events/export", params={"source": "nobody-at-all", "format": "csv"})
    assert rows(answer) == []


def test_an_unknown_format_is_refused(client: httpx.Client) -> None:
    answer = client.get("/v1/events/export", params={"format": "xml"})
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/json")
    error = answer.json()["error"]
    assert error["code"] == "invalid_parameter"
    assert "format" in error["message"]


def test_an_export_of_five_thousand_events_streams_them_all_in_order(
    client: httpx.Client,
) -> None:
    source = f"bulk-{uuid.uuid4().hex[:8]}"
    published: list[str] = []
    for chunk in range(5):
        items = [
            {"type": "bulk.item", "source": source, "data": {"n": chunk * 1000 + i}}
            for i in range(1000)
        ]
        answer = client.post("/v1/events", json=items)
        assert answer.status_code == 201
        published.extend(r["id"] for r in answer.json()["events"])
    seen: list[Event] = []
    chunks = 0
    with client.stream("GET", "/v1/events/export", params={"source": source}) as answer:
        assert answer.status_code == 200
        assert "content-length" not in answer.headers  # streamed, not built in memory first
        buffer = b""
        for piece in answer.iter_bytes():
            chunks += 1
            buffer += piece
            *complete, buffer = buffer.split(b"\n")
            seen.extend(json.loads(line) for line in complete)
    assert buffer == b""
    assert [e["id"] for e in seen] == published
    assert [e["data"]["n"] for e in seen] == list(range(5000))
    seqs = [e["seq"] for e in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5000
    table = rows(client.get("/v1/events/export", params={"source": source, "format": "csv"}))
    assert [r["id"] for r in table] == published
