"""The contract every store keeps (DESIGN.md sections 2 and 3), run against each implementation."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from tidings.envelope import (
    DEFAULT_TENANT,
    Candidate,
    Event,
    Filter,
    Limits,
    PublishContext,
    candidates_from_json,
    parse_filter,
)
from tidings.envelope.timefmt import now_us, parse_iso
from tidings.errors import TidingsError
from tidings.store import BucketCount, CountQuery, Query, Store

if TYPE_CHECKING:
    from tests.contract.conftest import FakeClock, StoreHarness

ALL = 10_000  # a limit no test reaches


def candidate(
    type_: str = "thing.happened", *, tenant: str = DEFAULT_TENANT, **fields: Any
) -> Candidate:
    """One validated candidate, built the way the publish path builds it."""
    body = {"type": type_, **fields}
    return candidates_from_json(body, PublishContext(tenant=tenant), Limits())[0][0]


async def append_one(store: Store, type_: str = "thing.happened", **fields: Any) -> Event:
    """Append one event and read it back as stored."""
    c = candidate(type_, **fields)
    [result] = await store.append([c])
    event = await store.get(c.tenant, result.id)
    assert event is not None
    return event


async def everything(store: Store, tenant: str = DEFAULT_TENANT) -> list[Event]:
    return await store.query(tenant, Query(order="asc", limit=ALL))


async def settle() -> None:
    """Let callbacks a store scheduled on the loop run (listeners may be called soon after)."""
    for _ in range(3):
        await asyncio.sleep(0)


# -- append and read back -------------------------------------------------------------------


async def test_an_appended_event_reads_back_with_every_field(store: Store) -> None:
    c = candidate(
        "device.switch.on",
        id="evt-1",
        source="smartthings",
        subject="device-123",
        time="2026-11-23T10:00:00.123456Z",
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        idempotency_key="k-1",
        data={"switch": "on", "level": 3.5, "tags": ["a", None, True], "nested": {"x": 1}},
        metadata={"kind": "state", "topic": "a/b"},
    )
    before = now_us()
    [result] = await store.append([c])
    after = now_us()

    assert result.id == "evt-1"
    assert result.seq >= 1
    assert result.duplicate is False
    event = await store.get(DEFAULT_TENANT, "evt-1")
    assert event is not None
    expected = Event(
        seq=result.seq,
        id="evt-1",
        type="device.switch.on",
        source="smartthings",
        subject="device-123",
        time_us=parse_iso("2026-11-23T10:00:00.123456Z"),
        received_at_us=event.received_at_us,
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        idempotency_key="k-1",
        data_json=c.data_json,
        metadata_json=c.metadata_json,
        tenant=DEFAULT_TENANT,
    )
    assert event == expected
    assert before <= event.received_at_us <= after
    assert event.data == {
        "switch": "on",
        "level": 3.5,
        "tags": ["a", None, True],
        "nested": {"x": 1},
    }
    assert event.metadata == {"kind": "state", "topic": "a/b"}
    assert await store.query(DEFAULT_TENANT, Query()) == [expected]
    assert await store.read_after(DEFAULT_TENANT, 0, 10) == [expected]
    assert await store.read_log(0, result.seq, 10) == [expected]


async def test_an_event_without_optional_fields_reads_back_with_nulls(store: Store) -> None:
    c = candidate("user.created")
    [result] = await store.append([c])

    event = await store.get(DEFAULT_TENANT, result.id)
    assert event is not None
    assert (event.subject, event.idempotency_key, event.data, event.metadata) == (
        None,
        None,
        None,
        {},
    )
    assert (event.source, event.trace_id, event.time_us) == ("api", c.trace_id, c.time_us)


async def test_an_unknown_id_reads_as_none(store: Store) -> None:
    await append_one(store)
    assert await store.get(DEFAULT_TENANT, "no-such-event") is None


async def test_seq_strictly_increases_in_append_order(store: Store) -> None:
    seqs: list[int] = []
    for index in range(5):
        results = await store.append([candidate(data=index), candidate(data=-index)])
        seqs.extend(r.seq for r in results)

    assert seqs == sorted(set(seqs))
    assert store.head() == seqs[-1]
    assert [e.seq for e in await everything(store)] == seqs


async def test_results_come_back_in_the_callers_order(store: Store) -> None:
    [original] = await store.append([candidate(id="old", idempotency_key="k")])
    batch = [
        candidate(id="a"),
        candidate(id="b", idempotency_key="k"),
        candidate(id="c"),
        candidate(id="d", data={"n": 4}),
    ]

    results = await store.append(batch)

    assert [(r.id, r.duplicate) for r in results] == [
        ("a", False),
        ("old", True),
        ("c", False),
        ("d", False),
    ]
    assert results[1].seq == original.seq
    assert results[0].seq < results[2].seq < results[3].seq


async def test_appending_nothing_answers_nothing_and_stores_nothing(store: Store) -> None:
    assert await store.append([]) == []
    assert store.head() == 0


# -- idempotency ----------------------------------------------------------------------------


async def test_a_repeated_key_answers_the_original_id_and_seq_as_a_duplicate(store: Store) -> None:
    first = candidate("order.paid", id="first", idempotency_key="pay-1", data={"amount": 5})
    [stored] = await store.append([first])
    # id, time, trace_id and metadata are not part of the comparison
    repeat = candidate(
        "order.paid",
        id="second",
        idempotency_key="pay-1",
        data={"amount": 5},
        time="2020-01-01T00:00:00Z",
        metadata={"retry": True},
    )

    [answer] = await store.append([repeat])

    assert (answer.id, answer.seq, answer.duplicate) == ("first", stored.seq, True)
    assert [e.id for e in await everything(store)] == ["first"]
    assert await store.get(DEFAULT_TENANT, "second") is None
    assert store.head() == stored.seq


async def test_data_with_the_same_json_in_another_key_order_is_a_duplicate(store: Store) -> None:
    await store.append([candidate(idempotency_key="k", data={"a": 1, "b": [1, {"c": 2, "d": 3}]})])

    [answer] = await store.append(
        [candidate(idempotency_key="k", data={"b": [1, {"d": 3, "c": 2}], "a": 1})]
    )

    assert answer.duplicate is True


@pytest.mark.parametrize(
    "change",
    [
        {"type": "order.refunded"},
        {"source": "billing"},
        {"subject": "order-2"},
        {"data": {"amount": 2}},
        {"data": {"amount": True}},  # JSON true is not 1, although Python says True == 1
        {"data": {"amount": 1, "extra": None}},
        {"data": None},
    ],
    ids=["type", "source", "subject", "data", "bool-for-number", "extra-key", "no-data"],
)
async def test_a_key_reused_with_other_content_is_a_conflict_that_stores_nothing_of_the_call(
    store: Store, change: dict[str, Any]
) -> None:
    original: dict[str, Any] = {
        "type": "order.paid",
        "source": "shop",
        "subject": "order-1",
        "data": {"amount": 1},
    }
    await store.append([candidate(idempotency_key="pay-1", **original)])
    committed: list[Event] = []
    store.add_commit_listener(committed.extend)
    head = store.head()
    call = [
        candidate("valid.neighbour", id="neighbour"),
        candidate(idempotency_key="pay-1", **{**original, **change}),
        candidate("valid.after", id="after"),
    ]

    with pytest.raises(TidingsError) as raised:
        await store.append(call)

    assert (raised.value.status, raised.value.code) == (409, "idempotency_conflict")
    assert raised.value.details[0]["loc"] == ["body", 1]
    assert [e.type for e in await everything(store)] == ["order.paid"]
    assert await store.get(DEFAULT_TENANT, "neighbour") is None
    assert store.head() == head
    await settle()
    assert committed == []


async def test_a_repeat_whose_data_is_not_json_is_a_conflict_and_the_store_keeps_serving(
    store: Store,
) -> None:
    await store.append([candidate(idempotency_key="k", data={"a": 1})])
    broken = replace(candidate(idempotency_key="k"), data_json="{not json")

    with pytest.raises(TidingsError) as raised:
        await store.append([broken])

    assert raised.value.status == 409
    [after] = await store.append([candidate()])
    assert after.duplicate is False


async def test_a_key_repeated_within_one_batch_stores_once(store: Store) -> None:
    results = await store.append(
        [
            candidate(id="a", idempotency_key="k", data=1),
            candidate(id="b"),
            candidate(id="c", idempotency_key="k", data=1),
        ]
    )

    assert [(r.id, r.duplicate) for r in results] == [("a", False), ("b", False), ("a", True)]
    assert results[2].seq == results[0].seq
    assert [e.id for e in await everything(store)] == ["a", "b"]


async def test_a_key_repeated_within_one_batch_with_other_data_refuses_the_batch(
    store: Store,
) -> None:
    with pytest.raises(TidingsError) as raised:
        await store.append(
            [candidate(idempotency_key="k", data=1), candidate(idempotency_key="k", data=2)]
        )

    assert (raised.value.status, raised.value.code) == (409, "idempotency_conflict")
    assert await everything(store) == []
    assert store.head() == 0


async def test_events_without_a_key_are_never_duplicates(store: Store) -> None:
    same = candidate(id="x", data={"a": 1})

    results = await store.append([same, same])

    assert [r.duplicate for r in results] == [False, False]
    assert results[0].seq != results[1].seq


async def test_a_key_is_scoped_to_its_tenant(store: Store) -> None:
    [mine] = await store.append([candidate(idempotency_key="k", data=1)])

    [theirs] = await store.append([candidate(idempotency_key="k", data=2, tenant="t2")])

    assert theirs.duplicate is False
    assert theirs.seq != mine.seq


# -- filters and query bounds ---------------------------------------------------------------

TRACE_1, TRACE_2 = "4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"
FILTER_EVENTS: list[dict[str, Any]] = [
    {"id": "e1", "type": "device.switch.on", "source": "hub", "subject": "d1",
     "data": {"x": 5, "room": "kitchen"}, "metadata": {"kind": "a"}, "trace_id": TRACE_1},
    {"id": "e2", "type": "device.switch.off", "source": "hub", "subject": "d2", "data": {"x": "5"}},
    {"id": "e3", "type": "device.level", "source": "mqtt", "subject": "d1", "data": {"x": True},
     "trace_id": TRACE_1},
    {"id": "e4", "type": "user.created", "source": "api", "data": {"x": 6, "nested": {"y": "z"}},
     "trace_id": TRACE_2},
    {"id": "e5", "type": "device", "source": "mqtt", "subject": "d3", "data": [1, 2],
     "metadata": {"kind": None}},
]  # fmt: skip

FILTER_CASES: list[tuple[dict[str, str], list[str]]] = [
    ({}, ["e1", "e2", "e3", "e4", "e5"]),
    ({"type": "device.switch.on"}, ["e1"]),
    ({"type": "device.*"}, ["e3"]),
    ({"type": "device.#"}, ["e1", "e2", "e3", "e5"]),
    ({"type": "device.*.on,user.created"}, ["e1", "e4"]),
    ({"type": "device.switch.on,user.created"}, ["e1", "e4"]),
    ({"type": "user.created,device.switch.on,user.created"}, ["e1", "e4"]),
    ({"type": "device.switch.off,device.level", "data.x": "5"}, ["e2"]),
    ({"type": "#"}, ["e1", "e2", "e3", "e4", "e5"]),
    ({"type": "*"}, ["e5"]),
    ({"source": "mqtt"}, ["e3", "e5"]),
    ({"exclude_source": "hub"}, ["e3", "e4", "e5"]),
    ({"source": "hub,mqtt", "exclude_source": "mqtt"}, ["e1", "e2"]),
    ({"subject": "d1"}, ["e1", "e3"]),
    ({"subject": "d1,d3"}, ["e1", "e3", "e5"]),
    ({"data.x": "5"}, ["e1", "e2"]),
    ({"data.x": "true"}, ["e3"]),
    ({"data.x": "6,true"}, ["e3", "e4"]),
    ({"data.nested.y": "z"}, ["e4"]),
    ({"data.room": "kitchen", "subject": "d1"}, ["e1"]),
    ({"metadata.kind": "a"}, ["e1"]),
    ({"metadata.kind": "null"}, ["e5"]),
    ({"type": "device.#", "data.x": "5"}, ["e1", "e2"]),
    ({"data.missing": "1"}, []),
    ({"trace_id": TRACE_1}, ["e1", "e3"]),
    ({"trace_id": f"{TRACE_1},{TRACE_2}"}, ["e1", "e3", "e4"]),
    ({"trace_id": TRACE_1, "source": "mqtt"}, ["e3"]),
    ({"trace_id": "ffffffffffffffffffffffffffffffff"}, []),
    ({"data.nested": "z"}, []),
]


@pytest.mark.parametrize(
    ("params", "expected"), FILTER_CASES, ids=[str(p) for p, _ in FILTER_CASES]
)
async def test_a_query_returns_exactly_the_events_its_filter_matches(
    store: Store, params: dict[str, str], expected: list[str]
) -> None:
    await store.append([candidate(**e) for e in FILTER_EVENTS])
    flt = parse_filter(params)

    found = await store.query(DEFAULT_TENANT, Query(filter=flt, order="asc", limit=ALL))
    caught_up = await store.read_after(DEFAULT_TENANT, 0, ALL, flt)

    assert [e.id for e in found] == expected
    assert [e.id for e in caught_up] == expected
    assert all(flt.matches(e) for e in found)


async def test_since_and_until_bound_received_at_inclusively(
    store: Store, clock: FakeClock
) -> None:
    stamps = []
    for name in ("a", "b", "c"):
        stamps.append(clock.advance(1))
        await store.append([candidate(id=name)])
    a, b, c = stamps

    async def ids(**bounds: Any) -> list[str]:
        return [e.id for e in await store.query(DEFAULT_TENANT, Query(order="asc", **bounds))]

    assert [e.received_at_us for e in await everything(store)] == stamps
    assert await ids(since_us=b) == ["b", "c"]
    assert await ids(until_us=b) == ["a", "b"]
    assert await ids(since_us=b, until_us=b) == ["b"]
    assert await ids(since_us=a + 1, until_us=c - 1) == ["b"]
    assert await ids(since_us=c + 1) == []


async def test_a_time_window_with_shared_stamps_seq_bounds_filters_and_both_orders(
    store: Store, clock: FakeClock
) -> None:
    """A time window is read as a range of positions: shared stamps, other tenants' events
    inside it and seq bounds must not change which events it holds."""
    start = clock.advance(1)
    await store.append([candidate(id="early")])
    clock.advance(1)
    window = [r.seq for r in await store.append([candidate(data=n) for n in range(4)])]
    await store.append([candidate(id="other", tenant="acme")])
    await store.append([candidate("odd.one", id="typed")])
    end = clock.advance(1)
    await store.append([candidate(id="late")])
    middle = start + 1_000_000

    async def found(**q: Any) -> list[int]:
        return [e.seq for e in await store.query(DEFAULT_TENANT, Query(limit=ALL, **q))]

    typed = (await store.get(DEFAULT_TENANT, "typed")).seq  # type: ignore[union-attr]
    assert await found(since_us=middle, until_us=middle, order="asc") == [*window, typed]
    assert await found(since_us=middle, until_us=end - 1) == [typed, *window[::-1]]
    assert await found(since_us=middle, after=window[1], before=typed) == window[:1:-1]
    assert await found(since_us=middle, until_us=middle, after=typed) == []
    only_typed = Query(filter=Filter(types=("odd.one",)), since_us=start, until_us=middle)
    assert [e.id for e in await store.query(DEFAULT_TENANT, only_typed)] == ["typed"]
    assert await found(since_us=end + 1) == []
    assert await found(until_us=start - 1) == []


async def test_time_since_and_time_until_bound_the_producers_time(store: Store) -> None:
    # appended out of time order, so received_at order does not give the answer away
    for name, time in (("y2022", "2022"), ("y2020", "2020"), ("y2021", "2021")):
        await store.append([candidate(id=name, time=f"{time}-06-01T00:00:00Z")])
    mid = parse_iso("2021-06-01T00:00:00Z")

    async def ids(**bounds: Any) -> list[str]:
        return [e.id for e in await store.query(DEFAULT_TENANT, Query(order="asc", **bounds))]

    assert await ids(time_since_us=mid) == ["y2022", "y2021"]
    assert await ids(time_until_us=mid) == ["y2020", "y2021"]
    assert await ids(time_since_us=mid, time_until_us=mid) == ["y2021"]
    assert await ids(time_since_us=mid + 1, time_until_us=mid - 1) == []


async def test_after_and_before_are_exclusive_seq_bounds_in_either_order(store: Store) -> None:
    seqs = [r.seq for r in await store.append([candidate(data=n) for n in range(10)])]
    s = seqs

    async def found(**q: Any) -> list[int]:
        return [e.seq for e in await store.query(DEFAULT_TENANT, Query(**q))]

    assert await found(limit=ALL) == s[::-1]  # newest first by default
    assert await found(after=s[2], before=s[7]) == [s[6], s[5], s[4], s[3]]
    assert await found(after=s[2], before=s[7], order="asc") == [s[3], s[4], s[5], s[6]]
    assert await found(after=s[2], before=s[7], limit=2) == [s[6], s[5]]
    assert await found(after=s[2], before=s[7], limit=2, order="asc") == [s[3], s[4]]
    assert await found(after=s[9]) == []
    assert await found(before=s[0]) == []
    assert await found(limit=3, order="asc") == s[:3]
    assert await found(limit=0) == []


async def test_the_limit_counts_only_matching_events(store: Store) -> None:
    await store.append([candidate("a.b" if n % 3 == 0 else "c.d", data=n) for n in range(12)])

    found = await store.query(DEFAULT_TENANT, Query(filter=Filter(types=("a.b",)), limit=3))

    assert [e.data for e in found] == [9, 6, 3]


async def test_read_after_pages_forward_in_seq_order(store: Store) -> None:
    seqs = [r.seq for r in await store.append([candidate(data=n) for n in range(7)])]

    pages: list[list[int]] = []
    position = 0
    while page := await store.read_after(DEFAULT_TENANT, position, 3):
        pages.append([e.seq for e in page])
        position = page[-1].seq

    assert pages == [seqs[0:3], seqs[3:6], seqs[6:7]]
    assert await store.read_after(DEFAULT_TENANT, seqs[4], 0) == []


async def test_read_after_with_a_filter_skips_what_it_does_not_match(store: Store) -> None:
    results = await store.append(
        [candidate("keep.me" if n % 2 else "skip.me", data=n) for n in range(8)]
    )
    flt = Filter(types=("keep.*",))

    page = await store.read_after(DEFAULT_TENANT, results[2].seq, 2, flt)

    assert [e.data for e in page] == [3, 5]


async def test_read_log_returns_every_tenant_between_two_positions(store: Store) -> None:
    results = await store.append(
        [candidate(data=n, tenant=("t2" if n % 2 else DEFAULT_TENANT)) for n in range(6)]
    )
    s = [r.seq for r in results]

    assert [e.data for e in await store.read_log(s[0], s[4], ALL)] == [1, 2, 3, 4]
    assert [e.tenant for e in await store.read_log(s[0], s[2], ALL)] == ["t2", DEFAULT_TENANT]
    assert [e.data for e in await store.read_log(s[0], s[5], 2)] == [1, 2]
    assert await store.read_log(s[5], s[5] + 10, ALL) == []


async def test_position_before_is_the_last_seq_received_before_a_time(
    store: Store, clock: FakeClock
) -> None:
    start = clock.now_us
    assert await store.position_before(DEFAULT_TENANT, start) == 0
    clock.advance(1)
    [first] = await store.append([candidate()])
    clock.advance(1)
    [_other_tenant] = await store.append([candidate(tenant="t2")])
    [second] = await store.append([candidate()])

    assert await store.position_before(DEFAULT_TENANT, start + 1) == 0
    assert await store.position_before(DEFAULT_TENANT, start + 1_000_001) == first.seq
    assert await store.position_before(DEFAULT_TENANT, clock.now_us) == first.seq
    assert await store.position_before(DEFAULT_TENANT, clock.now_us + 1) == second.seq


# -- positions ------------------------------------------------------------------------------


async def test_head_is_the_highest_committed_seq_and_ignores_what_was_not_stored(
    store: Store,
) -> None:
    assert store.head() == 0
    [a] = await store.append([candidate(idempotency_key="k", data=1)])
    assert store.head() == a.seq
    await store.append([candidate(idempotency_key="k", data=1)])
    assert store.head() == a.seq
    with pytest.raises(TidingsError):
        await store.append([candidate(), candidate(idempotency_key="k", data=2)])
    assert store.head() == a.seq
    [b] = await store.append([candidate(tenant="t2")])
    assert store.head() == b.seq > a.seq


async def test_earliest_is_the_lowest_stored_seq_of_a_tenant(store: Store) -> None:
    assert await store.earliest(DEFAULT_TENANT) is None
    [theirs] = await store.append([candidate(tenant="t2")])
    assert await store.earliest(DEFAULT_TENANT) is None
    mine = await store.append([candidate(), candidate()])

    assert await store.earliest(DEFAULT_TENANT) == mine[0].seq
    assert await store.earliest("t2") == theirs.seq


async def test_seqs_are_never_reused_even_after_a_conflict(store: Store) -> None:
    [a] = await store.append([candidate(idempotency_key="k", data=1)])
    with pytest.raises(TidingsError):
        await store.append([candidate(), candidate(), candidate(idempotency_key="k", data=2)])

    [b] = await store.append([candidate()])

    assert b.seq > a.seq
    assert [e.seq for e in await everything(store)] == [a.seq, b.seq]


# -- purge ----------------------------------------------------------------------------------


async def test_purge_deletes_only_events_received_before_the_cutoff(
    store: Store, clock: FakeClock
) -> None:
    old = await store.append([candidate(id="old1"), candidate(id="old2", tenant="t2")])
    cutoff = clock.advance(60)
    [kept] = await store.append([candidate(id="kept")])

    deleted = await store.purge(cutoff)

    assert deleted == 2
    assert [e.id for e in await everything(store)] == ["kept"]
    assert await everything(store, "t2") == []
    assert await store.get(DEFAULT_TENANT, "old1") is None
    assert await store.purged_through(DEFAULT_TENANT) == old[0].seq
    assert await store.purged_through("t2") == old[1].seq
    assert await store.earliest(DEFAULT_TENANT) == kept.seq
    assert await store.purge(cutoff) == 0
    assert await store.purged_through(DEFAULT_TENANT) == old[0].seq


async def test_purge_in_small_chunks_deletes_everything_due(store: Store, clock: FakeClock) -> None:
    results = await store.append([candidate(data=n) for n in range(7)])
    cutoff = clock.advance(1)
    await store.append([candidate(id="new")])

    assert await store.purge(cutoff, chunk=2) == 7
    assert await store.purged_through(DEFAULT_TENANT) == results[-1].seq
    assert [e.id for e in await everything(store)] == ["new"]


async def test_purge_keeps_every_event_from_keep_from_on_whatever_its_age(
    store: Store, clock: FakeClock
) -> None:
    results = await store.append([candidate(data=n) for n in range(5)])
    cutoff = clock.advance(1)
    await store.append([candidate(id="new")])

    deleted = await store.purge(cutoff, chunk=1, keep_from=results[2].seq)

    assert deleted == 2
    assert [e.data for e in await everything(store)][:3] == [2, 3, 4]
    assert await store.purged_through(DEFAULT_TENANT) == results[1].seq
    assert await store.earliest(DEFAULT_TENANT) == results[2].seq
    assert await store.purge(cutoff) == 3


async def test_purged_through_is_zero_for_a_tenant_never_purged(store: Store) -> None:
    await store.append([candidate()])
    assert await store.purged_through(DEFAULT_TENANT) == 0
    assert await store.purged_through("nobody") == 0


async def test_an_append_after_purging_everything_gets_a_larger_seq(
    store: Store, clock: FakeClock
) -> None:
    results = await store.append([candidate() for _ in range(3)])
    last = results[-1].seq

    assert await store.purge(clock.advance(1)) == 3
    assert store.head() == last
    [after] = await store.append([candidate()])

    assert after.seq > last


async def test_seqs_are_not_reused_after_purging_everything_and_reopening(
    harness: StoreHarness, store: Store, clock: FakeClock
) -> None:
    results = await store.append([candidate() for _ in range(3)])
    await store.purge(clock.advance(1))

    reopened = await harness.reopen()
    [after] = await reopened.append([candidate()])

    assert reopened.head() == after.seq
    assert after.seq > results[-1].seq
    assert await reopened.purged_through(DEFAULT_TENANT) == results[-1].seq


async def test_a_key_whose_event_was_purged_stores_again(store: Store, clock: FakeClock) -> None:
    [first] = await store.append([candidate(idempotency_key="k", data=1)])
    await store.purge(clock.advance(1))

    [again] = await store.append([candidate(idempotency_key="k", data=2)])

    assert again.duplicate is False
    assert again.seq > first.seq


# -- time -----------------------------------------------------------------------------------


async def test_received_at_never_goes_backwards_when_the_clock_does(
    store: Store, clock: FakeClock
) -> None:
    [a] = await store.append([candidate()])
    clock.advance(-3600)
    [b] = await store.append([candidate()])
    clock.advance(7200)
    [c] = await store.append([candidate()])

    stamps = [e.received_at_us for e in await everything(store)]
    assert stamps[0] == stamps[1] < stamps[2] == clock.now_us
    assert [a.seq, b.seq, c.seq] == sorted([a.seq, b.seq, c.seq])


# -- tenants --------------------------------------------------------------------------------


async def test_a_tenant_never_sees_another_tenants_events(store: Store) -> None:
    [theirs] = await store.append([candidate("secret.thing", id="s", tenant="t2", source="x")])
    [mine] = await store.append([candidate("own.thing", id="m")])
    await store.append([candidate("secret.thing", tenant="t2")])

    assert [e.id for e in await everything(store)] == ["m"]
    assert await store.get(DEFAULT_TENANT, "s") is None
    assert await store.get("t2", "m") is None
    assert [e.id for e in await store.read_after(DEFAULT_TENANT, 0, ALL)] == ["m"]
    assert await store.position_before(DEFAULT_TENANT, now_us() + 10**9) == mine.seq
    assert await store.earliest(DEFAULT_TENANT) == mine.seq
    stats = await store.stats(DEFAULT_TENANT)
    assert (stats.total, stats.by_type, stats.by_source) == (1, {"own.thing": 1}, {"api": 1})
    assert sum(hour["count"] for hour in stats.by_hour) == 1
    other = await store.stats("t2")
    assert (other.total, other.by_type, other.earliest_seq) == (2, {"secret.thing": 2}, theirs.seq)


async def test_the_same_id_in_two_tenants_reads_back_per_tenant(store: Store) -> None:
    await store.append([candidate(id="same", data="mine")])
    await store.append([candidate(id="same", data="theirs", tenant="t2")])

    mine, theirs = await store.get(DEFAULT_TENANT, "same"), await store.get("t2", "same")

    assert mine is not None and theirs is not None
    assert (mine.data, theirs.data) == ("mine", "theirs")


# -- commit listeners -----------------------------------------------------------------------


async def test_commit_listeners_see_every_committed_event_once_in_seq_order(store: Store) -> None:
    calls: list[list[Event]] = []
    store.add_commit_listener(lambda events: calls.append(list(events)))
    await store.append([candidate(idempotency_key="k", data=1)])
    await store.append([candidate(), candidate(tenant="t2"), candidate()])
    await store.append([candidate(idempotency_key="k", data=1)])  # only a duplicate
    with pytest.raises(TidingsError):
        await store.append([candidate(id="never"), candidate(idempotency_key="k", data=2)])
    await store.append([candidate(idempotency_key="k", data=1), candidate(id="last")])
    await settle()

    seen = [e for call in calls for e in call]
    stored = await store.read_log(0, store.head(), ALL)
    assert seen == stored
    assert len(stored) == 5
    assert all(call for call in calls)  # never called with nothing
    assert "never" not in {e.id for e in seen}


async def test_a_failing_commit_listener_neither_fails_the_append_nor_silences_the_others(
    store: Store,
) -> None:
    def broken(events: list[Event]) -> None:
        raise RuntimeError("listener bug")

    seen: list[Event] = []
    store.add_commit_listener(broken)
    store.add_commit_listener(seen.extend)

    [result] = await store.append([candidate()])
    await settle()

    assert [e.seq for e in seen] == [result.seq]


# -- stats ----------------------------------------------------------------------------------


async def test_stats_count_events_by_type_source_and_hour(store: Store) -> None:
    assert (await store.stats(DEFAULT_TENANT)).total == 0
    await store.append(
        [
            candidate("a.b", source="s1"),
            candidate("a.b", source="s2"),
            candidate("c.d", source="s1"),
        ]
    )
    [last] = await store.append([candidate("a.b", source="s1")])

    stats = await store.stats(DEFAULT_TENANT)

    assert stats.total == 4
    assert stats.by_type == {"a.b": 3, "c.d": 1}
    assert stats.by_source == {"s1": 3, "s2": 1}
    assert sum(hour["count"] for hour in stats.by_hour) == 4
    assert all(hour["hour"].endswith(":00:00.000Z") for hour in stats.by_hour)
    assert stats.head_seq == last.seq == store.head()
    assert stats.earliest_seq == await store.earliest(DEFAULT_TENANT)
    assert stats.size_bytes > 0


HOUR = 3_600_000_000
DAY = 24 * HOUR


async def _count_fixture(store: Store, clock: FakeClock) -> tuple[int, list[int]]:
    """Four events of the default tenant (and one of another) at known times after a
    midnight UTC; the midnight and the seqs."""
    base = (clock.now_us // DAY + 2) * DAY  # ahead of the real clock, so stamps are exact
    placed = [
        (10 * 60, candidate("a.b", source="s1", subject="d1")),
        (20 * 60, candidate("a.b", source="s2", subject="d2")),
        (30 * 60, candidate("a.b", source="s1", subject="d1", tenant="t2")),
        (70 * 60, candidate("c.d", source="s1", subject="d1")),
        (25 * 3600, candidate("a.b", source="s1")),
    ]
    seqs = []
    for offset_s, one in placed:
        clock.now_us = base + offset_s * 1_000_000
        [result] = await store.append([one])
        seqs.append(result.seq)
    return base, seqs


def _rows(found: list[BucketCount]) -> set[tuple[int, str | None, int]]:
    starts = [row.start_us for row in found]
    assert starts == sorted(starts), "rows come in bucket order"
    assert len({(row.start_us, row.key) for row in found}) == len(found), "each pair once"
    return {(row.start_us, row.key, row.count) for row in found}


async def test_count_buckets_counts_by_hour_and_key(store: Store, clock: FakeClock) -> None:
    base, _ = await _count_fixture(store, clock)

    by_type = await store.count_buckets(DEFAULT_TENANT, CountQuery(Query(), HOUR, by="type"))
    by_source = await store.count_buckets(DEFAULT_TENANT, CountQuery(Query(), HOUR, by="source"))
    by_subject = await store.count_buckets(DEFAULT_TENANT, CountQuery(Query(), HOUR, by="subject"))

    assert _rows(by_type) == {
        (base, "a.b", 2),
        (base + HOUR, "c.d", 1),
        (base + 25 * HOUR, "a.b", 1),
    }
    assert _rows(by_source) == {
        (base, "s1", 1),
        (base, "s2", 1),
        (base + HOUR, "s1", 1),
        (base + 25 * HOUR, "s1", 1),
    }
    assert _rows(by_subject) == {
        (base, "d1", 1),
        (base, "d2", 1),
        (base + HOUR, "d1", 1),
        (base + 25 * HOUR, None, 1),
    }


async def test_count_buckets_without_a_key_counts_whole_buckets(
    store: Store, clock: FakeClock
) -> None:
    base, _ = await _count_fixture(store, clock)

    days = await store.count_buckets(DEFAULT_TENANT, CountQuery(Query(), DAY))

    assert _rows(days) == {(base, None, 3), (base + DAY, None, 1)}
    assert await store.count_buckets("nobody", CountQuery(Query(), DAY)) == []


async def test_count_buckets_start_at_the_origin(store: Store, clock: FakeClock) -> None:
    base, _ = await _count_fixture(store, clock)

    # local days of a zone at UTC+1 start at 23:00 UTC
    days = await store.count_buckets(DEFAULT_TENANT, CountQuery(Query(), DAY, origin_us=23 * HOUR))

    assert _rows(days) == {(base - HOUR, None, 3), (base + 23 * HOUR, None, 1)}


async def test_count_buckets_follow_the_filter_and_every_bound(
    store: Store, clock: FakeClock
) -> None:
    base, seqs = await _count_fixture(store, clock)

    async def rows(**fields: Any) -> set[tuple[int, str | None, int]]:
        query = Query(**fields)
        return _rows(
            await store.count_buckets(DEFAULT_TENANT, CountQuery(query, HOUR, by="subject"))
        )

    assert await rows(filter=parse_filter({"source": "s1"})) == {
        (base, "d1", 1),
        (base + HOUR, "d1", 1),
        (base + 25 * HOUR, None, 1),
    }
    assert await rows(filter=parse_filter({"type": "c.*"})) == {(base + HOUR, "d1", 1)}
    assert await rows(since_us=base + 15 * 60_000_000, until_us=base + 2 * HOUR) == {
        (base, "d2", 1),
        (base + HOUR, "d1", 1),
    }
    assert await rows(after=seqs[0], before=seqs[-1]) == {(base, "d2", 1), (base + HOUR, "d1", 1)}
    assert await rows(time_until_us=0) == set()


async def test_count_buckets_with_a_filter_on_awkward_strings(
    store: Store, clock: FakeClock
) -> None:
    # Backslashes and NUL characters in data values: some stores must recheck such rows.
    base = (clock.now_us // DAY + 2) * DAY
    clock.now_us = base
    await store.append(
        [
            candidate(data={"note": "a\\b"}, subject="d1"),
            candidate(data={"note": "a\x00b"}, subject="d1"),
            candidate(data={"note": "a\ufffdb"}, subject="d2"),
        ]
    )

    for value in ("a\\b", "a\x00b", "a\ufffdb"):
        query = Query(filter=parse_filter({"data.note": value}))
        found = await store.count_buckets(DEFAULT_TENANT, CountQuery(query, HOUR, by="subject"))
        expected = "d2" if value == "a\ufffdb" else "d1"
        assert _rows(found) == {(base, expected, 1)}, value


def test_a_count_query_needs_a_width_and_an_origin_inside_it() -> None:
    with pytest.raises(ValueError):
        CountQuery(Query(), 0)
    with pytest.raises(ValueError):
        CountQuery(Query(), HOUR, origin_us=HOUR)
    with pytest.raises(ValueError):
        CountQuery(Query(), HOUR, origin_us=-1)


# -- life cycle -----------------------------------------------------------------------------


async def test_data_survives_closing_and_reopening(harness: StoreHarness, store: Store) -> None:
    await store.append([candidate(id="a", idempotency_key="k", data=1), candidate(id="b")])
    before = await everything(store)
    head = store.head()

    reopened = await harness.reopen()

    assert await everything(reopened) == before
    assert reopened.head() == head
    [repeat] = await reopened.append([candidate(idempotency_key="k", data=1)])
    assert (repeat.id, repeat.duplicate) == ("a", True)
    [fresh] = await reopened.append([candidate()])
    assert fresh.seq > head


async def test_received_at_never_goes_backwards_across_a_reopen(
    harness: StoreHarness, store: Store, clock: FakeClock
) -> None:
    await store.append([candidate(id="a")])
    reopened = await harness.reopen()
    clock.advance(-86_400)

    await reopened.append([candidate(id="b")])

    stamps = [e.received_at_us for e in await everything(reopened)]
    assert stamps[0] == stamps[1]


async def test_a_closed_store_refuses_appends_and_reads_with_503(
    harness: StoreHarness, store: Store
) -> None:
    await store.append([candidate(id="a")])
    await store.ping()
    await harness.close()

    for attempt in (
        store.append([candidate()]),
        store.get(DEFAULT_TENANT, "a"),
        store.query(DEFAULT_TENANT, Query()),
        store.ping(),
    ):
        with pytest.raises(TidingsError) as raised:
            await attempt
        assert raised.value.status == 503
