"""History queries against a real server: filters, bounds, order, limits and cursor paging.

A known data set is published once; each filter's answer is compared with the same filter
worked out here over that data set, restricted to its seq window so other tests' events in the
same store cannot leak in.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.integration.server import ServerProcess, ServerStore

Event = dict[str, Any]

TYPES = ["device.switch.on", "device.switch.off", "device.level", "device", "user.created"]
SOURCES = ["hall", "kitchen", "api"]
SUBJECTS = ["d1", "d2", None]
CATEGORIES = ["access", "security", "other"]
GROUPS = 3  # published apart in time, so received_at differs between groups
PER_GROUP = 30


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, server_store: ServerStore
) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("query") / "data", store=server_store).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        yield http


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class DataSet:
    events: list[Event]  # as stored, in seq order
    groups: list[list[Event]]
    window: dict[str, int]  # after/before bounds that select exactly the data set

    def select(self, keep: Callable[[Event], bool]) -> list[Event]:
        return [e for e in self.events if keep(e)]


def make_input(index: int) -> Event:
    return {
        "type": TYPES[index % len(TYPES)],
        "source": SOURCES[index % len(SOURCES)],
        "subject": SUBJECTS[index % 7 % len(SUBJECTS)],
        "time": iso(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=index)),
        "data": {
            "category": CATEGORIES[index % 4 % len(CATEGORIES)],
            "level": index % 5,
            "flag": index % 2 == 0,
            "room": {"name": f"room-{index % 3}"},
            "label": str(index % 5),
        },
        "metadata": {"zone": "north" if index % 2 else "south"},
    }


@pytest.fixture(scope="module")
def data(client: httpx.Client) -> DataSet:
    groups: list[list[Event]] = []
    for group in range(GROUPS):
        if group:
            time.sleep(0.05)  # a gap in received_at between groups
        items = [make_input(group * PER_GROUP + i) for i in range(PER_GROUP)]
        answer = client.post("/v1/events", json=items)
        assert answer.status_code == 201
        ids = [r["id"] for r in answer.json()["events"]]
        groups.append([client.get(f"/v1/events/{i}").json() for i in ids])
    events = [e for g in groups for e in g]
    window = {"after": events[0]["seq"] - 1, "before": events[-1]["seq"] + 1}
    return DataSet(events, groups, window)


def query(client: httpx.Client, params: Any) -> list[Event]:
    answer = client.get("/v1/events", params=params)
    assert answer.status_code == 200, answer.text
    events: list[Event] = answer.json()["events"]
    return events


def ids(events: list[Event]) -> list[str]:
    return [e["id"] for e in events]


def in_window(data: DataSet, params: dict[str, str]) -> list[tuple[str, str | int]]:
    return [*params.items(), *data.window.items(), ("order", "asc"), ("limit", 1000)]


FILTERS: list[tuple[str, dict[str, str], Callable[[Event], bool]]] = [
    ("exact type", {"type": "device.level"}, lambda e: e["type"] == "device.level"),
    (
        "star matches one segment",
        {"type": "device.*"},
        lambda e: e["type"] == "device.level",
    ),
    (
        "star in the middle",
        {"type": "device.*.on"},
        lambda e: e["type"] == "device.switch.on",
    ),
    (
        "hash matches the rest, including nothing",
        {"type": "device.#"},
        lambda e: e["type"].split(".")[0] == "device",
    ),
    ("hash alone matches all", {"type": "#"}, lambda e: True),
    (
        "star as a first segment",
        {"type": "*.created"},
        lambda e: e["type"] == "user.created",
    ),
    (
        "comma list of types",
        {"type": "user.created,device.switch.#"},
        lambda e: e["type"] in ("user.created", "device.switch.on", "device.switch.off"),
    ),
    ("source", {"source": "hall"}, lambda e: e["source"] == "hall"),
    (
        "comma list of sources",
        {"source": "hall,kitchen"},
        lambda e: e["source"] in ("hall", "kitchen"),
    ),
    ("exclude_source", {"exclude_source": "hall"}, lambda e: e["source"] != "hall"),
    ("subject", {"subject": "d1"}, lambda e: e["subject"] == "d1"),
    ("subject list", {"subject": "d1,d2"}, lambda e: e["subject"] in ("d1", "d2")),
    (
        "data string list",
        {"data.category": "access,security"},
        lambda e: e["data"]["category"] in ("access", "security"),
    ),
    ("data number", {"data.level": "3"}, lambda e: e["data"]["level"] == 3),
    ("data string of digits", {"data.label": "3"}, lambda e: e["data"]["label"] == "3"),
    ("data boolean", {"data.flag": "true"}, lambda e: e["data"]["flag"] is True),
    (
        "data nested path",
        {"data.room.name": "room-1"},
        lambda e: e["data"]["room"]["name"] == "room-1",
    ),
    ("data missing path", {"data.nothing.here": "x"}, lambda e: False),
    ("metadata", {"metadata.zone": "north"}, lambda e: e["metadata"]["zone"] == "north"),
    (
        "several filters together",
        {"type": "device.#", "exclude_source": "api", "data.category": "access"},
        lambda e: (
            e["type"].startswith("device")
            and e["source"] != "api"
            and e["data"]["category"] == "access"
        ),
    ),
]


@pytest.mark.parametrize(("params", "keep"), [f[1:] for f in FILTERS], ids=[f[0] for f in FILTERS])
def test_a_filter_selects_exactly_the_matching_events(
    client: httpx.Client, data: DataSet, params: dict[str, str], keep: Callable[[Event], bool]
) -> None:
    expected = data.select(keep)
    got = query(client, in_window(data, params))
    assert ids(got) == ids(expected)
    if params != {"type": "#"} and params != {"data.nothing.here": "x"}:
        assert 0 < len(expected) < len(data.events), "the data set should exercise this filter"


def test_repeated_parameters_mean_the_same_as_a_comma_list(
    client: httpx.Client, data: DataSet
) -> None:
    repeated = query(
        client, [("type", "user.created"), ("type", "device.level"), *data.window.items()]
    )
    comma = query(client, [("type", "user.created,device.level"), *data.window.items()])
    assert ids(repeated) == ids(comma)
    assert {e["type"] for e in repeated} == {"user.created", "device.level"}
    both_sources = query(client, [("source", "hall"), ("source", "api"), *data.window.items()])
    assert {e["source"] for e in both_sources} == {"hall", "api"}


def test_since_and_until_bound_received_at_inclusively(client: httpx.Client, data: DataSet) -> None:
    first, second, third = data.groups
    received = [parse_time(g[0]["received_at"]) for g in data.groups]
    assert received[0] < received[1] < received[2]
    gap_1 = received[0] + (received[1] - received[0]) / 2
    gap_2 = received[1] + (received[2] - received[1]) / 2
    assert ids(query(client, in_window(data, {"since": iso(gap_1)}))) == ids(second + third)
    assert ids(query(client, in_window(data, {"until": iso(gap_1)}))) == ids(first)
    between = {"since": iso(gap_1), "until": iso(gap_2)}
    assert ids(query(client, in_window(data, between))) == ids(second)
    exact = {"since": second[0]["received_at"]}
    assert ids(query(client, in_window(data, exact))) == ids(second + third)


def test_since_accepts_an_offset_instead_of_z(client: httpx.Client, data: DataSet) -> None:
    received = [parse_time(g[0]["received_at"]) for g in data.groups]
    gap = received[1] + (received[2] - received[1]) / 2
    offset = gap.astimezone(datetime.now().astimezone().tzinfo).isoformat()
    plus_two = gap.astimezone(UTC).replace(tzinfo=None) + timedelta(hours=2)
    with_offset = plus_two.isoformat(timespec="milliseconds") + "+02:00"
    assert ids(query(client, in_window(data, {"since": offset}))) == ids(data.groups[2])
    assert ids(query(client, in_window(data, {"since": with_offset}))) == ids(data.groups[2])


def test_time_since_and_time_until_bound_the_producer_time(
    client: httpx.Client, data: DataSet
) -> None:
    low, high = "2026-01-02T00:00:00Z", "2026-01-03T12:00:00Z"
    expected = data.select(lambda e: low <= e["time"].replace(".000Z", "Z") <= high)
    assert len(expected) == 37  # hours 24..60 inclusive
    got = query(client, in_window(data, {"time_since": low, "time_until": high}))
    assert ids(got) == ids(expected)
    # since bounds received_at, not the producer's time: the whole data set arrived later
    assert query(client, in_window(data, {"since": "2026-01-03T00:00:00Z"})) == data.events


def test_after_and_before_are_exclusive_seq_bounds(client: httpx.Client, data: DataSet) -> None:
    seqs = [e["seq"] for e in data.events]
    after, before = seqs[10], seqs[20]
    got = query(client, {"after": after, "before": before, "order": "asc"})
    assert [e["seq"] for e in got] == seqs[11:20]


def test_order_is_newest_first_by_default_and_oldest_first_when_asked(
    client: httpx.Client, data: DataSet
) -> None:
    default = query(client, data.window)
    assert ids(default) == ids(data.events[::-1])
    desc = query(client, {**data.window, "order": "desc"})
    assert ids(desc) == ids(data.events[::-1])
    asc = query(client, {**data.window, "order": "asc"})
    assert ids(asc) == ids(data.events)


def test_limit_caps_the_page_and_defaults_to_one_hundred(
    client: httpx.Client, data: DataSet
) -> None:
    assert ids(query(client, {**data.window, "limit": 7})) == ids(data.events[::-1][:7])
    assert ids(query(client, {**data.window, "limit": 1, "order": "asc"})) == ids(data.events[:1])
    source = f"many-{uuid.uuid4().hex[:8]}"
    client.post("/v1/events", json=[{"type": "many", "source": source} for _ in range(130)])
    page = client.get("/v1/events", params={"source": source}).json()
    assert len(page["events"]) == 100 and page["next"] is not None
    assert len(query(client, {"source": source, "limit": 1000})) == 130


def test_an_event_matches_its_stored_form_in_every_field(
    client: httpx.Client, data: DataSet
) -> None:
    (event,) = query(client, {"after": data.events[5]["seq"] - 1, "limit": 1, "order": "asc"})
    assert event == data.events[5]
    assert set(event) == {
        "id", "seq", "type", "source", "subject", "time", "received_at", "trace_id",
        "idempotency_key", "data", "metadata",
    }  # fmt: skip


def test_received_at_never_goes_backwards_in_seq_order(client: httpx.Client, data: DataSet) -> None:
    events = query(client, {"order": "asc", "limit": 1000})
    stamps = [parse_time(e["received_at"]) for e in events]
    assert stamps == sorted(stamps)


def walk(
    client: httpx.Client, params: dict[str, Any], *, during: Callable[[], None] | None = None
) -> tuple[list[Event], list[int]]:
    """Follow ``next`` to the end; the events and each page's size. ``during`` runs between
    pages."""
    events: list[Event] = []
    sizes: list[int] = []
    cursor: str | None = None
    for _ in range(1000):
        page_params = {**params, **({"cursor": cursor} if cursor else {})}
        answer = client.get("/v1/events", params=page_params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        events.extend(page["events"])
        sizes.append(len(page["events"]))
        cursor = page["next"]
        if cursor is None:
            return events, sizes
        if during is not None:
            during()
    raise AssertionError("paging did not end")


@pytest.fixture(scope="module")
def pages(client: httpx.Client) -> list[Event]:
    """250 events of one source, in seq order."""
    source = f"pager-{uuid.uuid4().hex[:8]}"
    items = [
        {"type": "page.tick", "source": source, "data": {"n": n, "parity": ["even", "odd"][n % 2]}}
        for n in range(250)
    ]
    answer = client.post("/v1/events", json=items)
    assert answer.status_code == 201
    results = answer.json()["events"]
    return [
        {"id": r["id"], "seq": r["seq"], "n": n, "source": source} for n, r in enumerate(results)
    ]


def test_walking_next_yields_every_event_once_newest_first(
    client: httpx.Client, pages: list[Event]
) -> None:
    events, sizes = walk(client, {"source": pages[0]["source"], "limit": 100})
    assert sizes == [100, 100, 50]
    assert ids(events) == ids(pages[::-1])


def test_walking_next_in_ascending_order_yields_every_event_once_oldest_first(
    client: httpx.Client, pages: list[Event]
) -> None:
    events, sizes = walk(client, {"source": pages[0]["source"], "limit": 100, "order": "asc"})
    assert sizes == [100, 100, 50]
    assert ids(events) == ids(pages)


def test_paging_keeps_the_filters_of_the_first_page(
    client: httpx.Client, pages: list[Event]
) -> None:
    params = {"source": pages[0]["source"], "data.parity": "odd", "limit": 40, "order": "asc"}
    events, sizes = walk(client, params)
    assert sizes == [40, 40, 40, 5]
    assert ids(events) == ids([p for p in pages if p["n"] % 2])


def test_paging_within_seq_bounds_stops_at_the_bound(
    client: httpx.Client, pages: list[Event]
) -> None:
    after, before = pages[20]["seq"], pages[230]["seq"]
    params = {"source": pages[0]["source"], "after": after, "before": before, "limit": 100}
    events, _ = walk(client, params)
    assert ids(events) == ids(pages[21:230][::-1])


def test_a_page_that_ends_exactly_at_the_last_event_has_no_next(
    client: httpx.Client, pages: list[Event]
) -> None:
    events, sizes = walk(client, {"source": pages[0]["source"], "limit": 125})
    assert sizes == [125, 125]
    assert len(events) == 250


def test_paging_newest_first_is_not_disturbed_by_events_published_meanwhile(
    client: httpx.Client,
) -> None:
    source = f"busy-{uuid.uuid4().hex[:8]}"
    first = client.post("/v1/events", json=[{"type": "busy", "source": source} for _ in range(90)])
    original = [r["id"] for r in first.json()["events"]]
    counter = itertools.count()

    def publish_more() -> None:
        more = [{"type": "busy", "source": source, "data": next(counter)} for _ in range(7)]
        assert client.post("/v1/events", json=more).status_code == 201

    events, _ = walk(client, {"source": source, "limit": 20}, during=publish_more)
    assert ids(events) == original[::-1]


def test_paging_oldest_first_also_reaches_events_published_meanwhile_without_repeats(
    client: httpx.Client,
) -> None:
    source = f"growing-{uuid.uuid4().hex[:8]}"
    client.post("/v1/events", json=[{"type": "grow", "source": source} for _ in range(50)])
    published = 0

    def publish_more() -> None:
        nonlocal published
        if published < 3:
            published += 1
            client.post("/v1/events", json=[{"type": "grow", "source": source} for _ in range(5)])

    events, _ = walk(client, {"source": source, "limit": 20, "order": "asc"}, during=publish_more)
    everything = query(client, {"source": source, "order": "asc", "limit": 1000})
    assert published >= 2 and len(everything) == 50 + 5 * published
    assert ids(events) == ids(everything)


# -- stats and operations ---------------------------------------------------------------


def test_stats_count_what_was_published_by_type_source_and_hour(client: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:8]
    source = f"stats-{tag}"
    hours_around = {datetime.now(UTC).strftime("%Y-%m-%dT%H:00:00.000Z")}
    before = client.get("/v1/stats").json()["events"]
    items = [{"type": f"stats{tag}.a", "source": source} for _ in range(3)]
    items += [{"type": f"stats{tag}.b", "source": source} for _ in range(2)]
    results = client.post("/v1/events", json=items).json()["events"]
    answer = client.get("/v1/stats")
    assert answer.status_code == 200
    stats = answer.json()
    after = stats["events"]
    assert after["total"] == before["total"] + 5
    assert after["by_type"][f"stats{tag}.a"] == 3
    assert after["by_type"][f"stats{tag}.b"] == 2
    assert after["by_source"][source] == 5
    assert (
        sum(h["count"] for h in after["by_hour"]) == sum(h["count"] for h in before["by_hour"]) + 5
    )
    hours_around.add(datetime.now(UTC).strftime("%Y-%m-%dT%H:00:00.000Z"))
    hours = {h["hour"]: h["count"] for h in after["by_hour"]}
    assert sum(hours.get(hour, 0) for hour in hours_around) >= 5
    assert stats["store"]["head_seq"] == results[-1]["seq"]
    assert stats["store"]["size_bytes"] > 0


def test_stats_totals_agree_with_a_full_export(client: httpx.Client) -> None:
    stats = client.get("/v1/stats").json()["events"]
    exported = client.get("/v1/events/export").text.splitlines()
    assert stats["total"] == len(exported)
    assert sum(stats["by_source"].values()) == stats["total"]


def test_healthz_answers_ok(client: httpx.Client) -> None:
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


def test_readyz_answers_ready_with_its_checks(client: httpx.Client) -> None:
    answer = client.get("/readyz")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ready"
    assert body["checks"]["store"] == "ok"


def metric_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample in Prometheus text format."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, rest = head.partition("{")
        labels: dict[str, str] = {}
        for pair in rest.rstrip("}").split('",') if rest else []:
            key, _, raw = pair.partition("=")
            labels[key.strip(",")] = raw.strip('"')
        samples.append((name, labels, float(value)))
    return samples


def test_metrics_count_ingested_events_and_never_label_an_event_type(
    client: httpx.Client,
) -> None:
    tag = uuid.uuid4().hex[:8]
    source = f"metrics-{tag}"
    secret_type = f"secret{tag}.kind"

    def ingested(text: str) -> float:
        return sum(
            value
            for name, labels, value in metric_samples(text)
            if name == "tidings_events_ingested_total" and labels.get("source") == source
        )

    before = client.get("/metrics").text
    client.post("/v1/events", json=[{"type": secret_type, "source": source} for _ in range(4)])
    client.post("/v1/events", json={"type": secret_type, "source": source})
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert ingested(before) == 0 and ingested(text) == 5
    names = {name for name, _, _ in metric_samples(text)}
    assert "tidings_publish_latency_seconds_bucket" in names
    assert "tidings_publish_latency_seconds_count" in names
    assert "tidings_store_commit_batch_events_bucket" in names
    assert "tidings_store_commit_batch_events_count" in names
    assert tag not in text.replace(source, "")
    types = {e["type"] for e in query(client, {"limit": 1000})}
    for _, labels, _ in metric_samples(text):
        assert not set(labels.values()) & types, labels
