"""GET /v1/stats/counts against a real server: totals, series, filters and bad parameters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.integration.server import ServerProcess


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = ServerProcess(tmp_path_factory.mktemp("counts") / "data").start()
    try:
        with httpx.Client(base_url=server.url, timeout=30.0) as http:
            published = [
                {"type": "door.opened", "source": "hall", "subject": "front"},
                {"type": "door.opened", "source": "hall", "subject": "back"},
                {"type": "door.closed", "source": "hall", "subject": "front"},
                {"type": "light.on", "source": "kitchen", "subject": "lamp"},
                {"type": "light.on", "source": "kitchen"},
            ]
            assert http.post("/v1/events", json=published).status_code == 201
            yield http
    finally:
        server.stop()


def counts(client: httpx.Client, **params: Any) -> dict[str, Any]:
    answer = client.get("/v1/stats/counts", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def by_key(body: dict[str, Any]) -> dict[str | None, int]:
    return {s["key"]: s["total"] for s in body["series"]}


def test_hourly_counts_by_type_cover_the_last_48_hours(client: httpx.Client) -> None:
    body = counts(client, by="type")

    assert (body["bucket"], body["by"], body["utc_offset"]) == ("hour", "type", 0)
    assert len(body["starts"]) == len(body["totals"]) == 48
    assert body["total"] == 5 == sum(body["totals"])
    assert by_key(body) == {"door.opened": 2, "light.on": 2, "door.closed": 1}
    assert all(len(s["counts"]) == 48 for s in body["series"])
    assert body["starts"][-1].endswith(":00:00.000Z")


def test_daily_counts_align_to_the_zone_given(client: httpx.Client) -> None:
    body = counts(client, bucket="day", utc_offset=120, by="source")

    assert len(body["starts"]) == 30
    assert all(start.endswith("T22:00:00.000Z") for start in body["starts"])
    assert by_key(body) == {"hall": 3, "kitchen": 2}


def test_counts_follow_the_filters(client: httpx.Client) -> None:
    assert by_key(counts(client, by="subject", type="door.*")) == {"front": 2, "back": 1}
    assert by_key(counts(client, by="subject", source="kitchen")) == {"lamp": 1, None: 1}
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert counts(client, since=later, until=later)["total"] == 0


def test_keys_beyond_top_fold_into_other(client: httpx.Client) -> None:
    body = counts(client, by="type", top=1)

    assert body["series"][0]["total"] == 2
    assert body["series"][1] == {**body["series"][1], "key": None, "other": True, "keys": 2}
    assert body["series"][1]["total"] == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"bucket": "week"}, "bucket"),
        ({"by": "data"}, "by"),
        ({"utc_offset": "2000"}, "utc_offset"),
        ({"utc_offset": "east"}, "utc_offset"),
        ({"top": "0"}, "top"),
        ({"since": "2026-11-23T10:00:00Z", "until": "2026-11-23T09:00:00Z"}, "since"),
        ({"since": "2000-01-01T00:00:00Z"}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"type": "a.#.b"}, "type"),
        ({"limit": "5"}, "limit"),
    ],
)
def test_bad_parameters_answer_400_naming_the_field(
    client: httpx.Client, params: dict[str, str], field: str
) -> None:
    answer = client.get("/v1/stats/counts", params=params)

    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] in ("invalid_parameter", "invalid_filter")
    assert error["details"][0]["loc"] == ["query", field]
