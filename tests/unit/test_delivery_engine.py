"""The delivery engine on the in-memory backend with a stand-in sender (no HTTP, no disk).

Dispatch rounds (their delivery and match budgets, the per-endpoint queue cap, filters), the
batched event reads for claimed retries, and the attempt loop end to end: send, record, retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any, cast

import pytest

from tests.contract.conftest import FakeClock
from tidings.delivery import engine as engine_module
from tidings.delivery import schedule as schedule_module
from tidings.delivery.engine import Engine, Job, message_id
from tidings.delivery.governor import Governor
from tidings.delivery.schedule import RetrySchedule, parse_schedule
from tidings.delivery.sender import AttemptResult, Sender
from tidings.envelope import (
    DEFAULT_TENANT,
    Candidate,
    Event,
    Limits,
    PublishContext,
    candidates_from_json,
)
from tidings.envelope.timefmt import now_us
from tidings.store.deliveries import (
    Attempt,
    AttemptRecord,
    Delivery,
    DeliveryStore,
    Endpoint,
    Secret,
)
from tidings.testing import MemoryDeliveryStore, MemoryStore

OK = 200


def candidate(type_: str, tenant: str = DEFAULT_TENANT, **data: Any) -> Candidate:
    body = {"type": type_, "data": data}
    return candidates_from_json(body, PublishContext(tenant=tenant), Limits())[0][0]


async def append(store: MemoryStore, types: list[str], tenant: str = DEFAULT_TENANT) -> list[int]:
    results = await store.append([candidate(t, tenant) for t in types])
    return [r.seq for r in results]


class StandInSender:
    """Answers each attempt with the next of ``codes`` (then ``OK``), recording the calls."""

    def __init__(self, *codes: int, latency_ms: float = 2.0, clock: Callable[[], int] = now_us):
        self.timeout_s = 1.0
        self.codes = list(codes)
        self.latency_ms = latency_ms
        self.clock = clock
        self.calls: list[tuple[str, int, str]] = []  # (endpoint id, event seq, message id)
        self.results: list[AttemptResult] = []

    async def send(self, endpoint: Endpoint, event: Event, message_id: str) -> AttemptResult:
        self.calls.append((endpoint.id, event.seq, message_id))
        code = self.codes.pop(0) if self.codes else OK
        result = AttemptResult(
            self.clock(), code, self.latency_ms, None, f"answer {code}", False, None
        )
        self.results.append(result)
        await asyncio.sleep(0)
        return result


class Harness:
    def __init__(self, store: MemoryStore, sender: StandInSender, schedule: str = "0,1") -> None:
        self.store = store
        self.state: DeliveryStore = MemoryDeliveryStore()
        self.sender = sender
        self.disabled: list[tuple[str, str]] = []

        async def on_disable(endpoint: Endpoint, reason: str) -> None:
            self.disabled.append((endpoint.id, reason))

        self.engine = Engine(
            store,
            self.state,
            cast(Sender, sender),
            RetrySchedule(parse_schedule(schedule), 0),
            concurrency=8,
            disable_after_s=3600,
            on_disable=on_disable,
        )

    async def add_endpoint(
        self,
        id_: str,
        events: list[str] | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> Endpoint:
        endpoint = Endpoint(
            id=id_,
            tenant=tenant,
            url=f"https://example.com/{id_}",
            events=events or ["#"],
            filter={},
            secrets=[Secret("whsec_test")],
            active=True,
            description=None,
            rate_limit=None,
            headers={},
            created_at_us=1,
            updated_at_us=1,
            cursor=self.store.head(),
        )
        await self.state.create_endpoint(endpoint)
        self.engine.put_endpoint(endpoint)
        return endpoint

    async def deliveries(self, endpoint: Endpoint) -> list[tuple[Delivery, list[Attempt]]]:
        found = await self.state.list_deliveries(endpoint.tenant, endpoint.id, None, 10_000, None)
        return found[::-1]  # oldest first

    async def seqs(self, endpoint: Endpoint) -> list[int]:
        return [d.event_seq for d, _ in await self.deliveries(endpoint)]

    async def cursor(self, endpoint: Endpoint) -> int:
        """The stored cursor, after checking the engine's copy agrees."""
        found = await self.state.get_endpoint(endpoint.tenant, endpoint.id)
        assert found is not None
        assert self.engine.endpoints[endpoint.id].cursor == found.cursor
        return found.cursor


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    store = MemoryStore()
    await store.open()
    yield store
    await store.close()


ReadCall = tuple[int, int, int]


@pytest.fixture
def reads(store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> list[ReadCall]:
    """Every ``read_log(after, through, limit)`` call made on the store."""
    calls: list[ReadCall] = []
    original = store.read_log

    async def read_log(after: int, through: int, limit: int) -> list[Event]:
        calls.append((after, through, limit))
        return await original(after, through, limit)

    monkeypatch.setattr(store, "read_log", read_log)
    return calls


@contextlib.asynccontextmanager
async def running(*loops: Callable[[], Coroutine[Any, Any, None]]) -> AsyncIterator[None]:
    """Run the engine's loops as tasks for the block; a loop that crashed fails the test."""
    tasks = [asyncio.create_task(loop()) for loop in loops]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if not isinstance(result, asyncio.CancelledError):
            raise AssertionError(f"a loop ended: {result!r}")


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


# -- dispatch rounds -------------------------------------------------------------------------


async def test_a_round_creates_about_the_budget_and_later_rounds_the_rest(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "DISPATCH_BUDGET", 10)
    h = Harness(store, StandInSender())
    endpoints = [await h.add_endpoint(f"wh_{i}") for i in range(3)]
    events = await append(store, ["load.tested"] * 20)
    assert events == list(range(1, 21))

    assert h.engine.cursor_lag() == 20
    assert await h.engine.dispatch_once() is True

    # 3 deliveries per event: the budget of 10 is reached at event 4, which is finished
    for endpoint in endpoints:
        assert await h.seqs(endpoint) == [1, 2, 3, 4]
        assert await h.cursor(endpoint) == 4
    assert h.engine.queued() == 12
    assert h.engine.cursor_lag() == h.engine.cursor_lag(DEFAULT_TENANT) == 16
    assert h.engine.cursor_lag("another-tenant") == 0

    rounds = [await h.engine.dispatch_once() for _ in range(4)]
    assert rounds == [True, True, True, False]
    for endpoint in endpoints:
        made = [d for d, _ in await h.deliveries(endpoint)]
        assert [d.event_seq for d in made] == events  # each event once, in order
        assert all(d.status == "pending" and d.attempts == 0 for d in made)
        by_seq = {e.seq: e for e in await store.read_log(0, 20, 20)}
        assert [d.message_id for d in made] == [
            message_id(endpoint.id, by_seq[d.event_seq].id) for d in made
        ]
        assert await h.cursor(endpoint) == 20
    assert h.engine.queued() == 60
    assert (await h.state.stats(DEFAULT_TENANT, now_us())).by_status == {"pending": 60}
    # nothing more to do: no read, no delivery
    assert await h.engine.dispatch_once() is False
    assert h.engine.queued() == 60


async def test_the_budget_reached_at_the_last_event_read_finishes_the_round(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "DISPATCH_BUDGET", 4)
    h = Harness(store, StandInSender())
    endpoints = [await h.add_endpoint(f"wh_{i}") for i in range(2)]
    await append(store, ["load.tested"] * 2)

    assert await h.engine.dispatch_once() is False

    for endpoint in endpoints:
        assert await h.seqs(endpoint) == [1, 2]
        assert await h.cursor(endpoint) == 2


async def test_the_match_budget_limits_the_events_read_per_round(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch, reads: list[ReadCall]
) -> None:
    monkeypatch.setattr(engine_module, "MATCH_BUDGET", 6)
    h = Harness(store, StandInSender())
    endpoints = [await h.add_endpoint(f"wh_{i}") for i in range(3)]
    await append(store, ["load.tested"] * 7)

    rounds = [await h.engine.dispatch_once() for _ in range(4)]

    assert rounds == [True, True, True, False]
    # 6 pairs over 3 endpoints: 2 events a round
    assert reads == [(0, 7, 2), (2, 7, 2), (4, 7, 2), (6, 7, 2)]
    for endpoint in endpoints:
        assert await h.seqs(endpoint) == list(range(1, 8))
        assert await h.cursor(endpoint) == 7

    # with one endpoint inactive, 3 events a round; with a budget below the endpoints, one
    await append(store, ["load.tested"] * 4)
    h.engine.put_endpoint(replace(endpoints[2], active=False, _parsed=None))
    reads.clear()
    assert await h.engine.dispatch_once() is True
    assert reads == [(7, 11, 3)]
    assert [await h.cursor(e) for e in endpoints] == [10, 10, 7]
    monkeypatch.setattr(engine_module, "MATCH_BUDGET", 1)
    assert await h.engine.dispatch_once() is False
    assert reads == [(7, 11, 3), (10, 11, 1)]
    assert [await h.cursor(e) for e in endpoints] == [11, 11, 7]
    assert await h.seqs(endpoints[0]) == list(range(1, 12))
    assert await h.seqs(endpoints[2]) == list(range(1, 8))


async def test_an_endpoint_with_a_full_queue_waits_while_others_advance(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "MAX_QUEUED_FIRST", 4)
    monkeypatch.setattr(engine_module, "MIN_QUEUED_PER_ENDPOINT", 2)  # cap: max(2, 4 // 2)
    h = Harness(store, StandInSender())
    full = await h.add_endpoint("wh_full", events=["a.*"])
    other = await h.add_endpoint("wh_other", events=["b.*"])
    await append(store, ["a.x", "a.x"])  # 1, 2

    assert await h.engine.dispatch_once() is False
    assert await h.seqs(full) == [1, 2]
    assert (await h.cursor(full), await h.cursor(other)) == (2, 2)

    await append(store, ["b.x", "a.x", "b.x"])  # 3, 4, 5
    assert await h.engine.dispatch_once() is False  # the full one is skipped, not behind

    assert await h.seqs(full) == [1, 2]
    assert await h.seqs(other) == [3, 5]
    assert (await h.cursor(full), await h.cursor(other)) == (2, 5)
    assert await h.engine.dispatch_once() is False  # still full: no change
    assert (await h.cursor(full), await h.cursor(other)) == (2, 5)

    h.engine.drop_endpoint(full.id, keep=True)  # its queue emptied, the endpoint kept
    assert await h.engine.dispatch_once() is False
    assert await h.seqs(full) == [1, 2, 4]
    assert await h.seqs(other) == [3, 5]
    assert (await h.cursor(full), await h.cursor(other)) == (5, 5)


async def test_endpoints_get_only_the_events_of_their_types_and_tenant(
    store: MemoryStore,
) -> None:
    h = Harness(store, StandInSender())
    pattern = await h.add_endpoint("wh_pattern", events=["a.*"])
    everything = await h.add_endpoint("wh_all")
    theirs = await h.add_endpoint("wh_acme", tenant="acme")
    await append(store, ["a.x", "a.y", "a.x.y", "b.x", "ab.x"])  # 1-5
    await append(store, ["a.z"], tenant="acme")  # 6
    await append(store, ["a.w"])  # 7

    assert await h.engine.dispatch_once() is False

    assert await h.seqs(pattern) == [1, 2, 7]
    assert await h.seqs(everything) == [1, 2, 3, 4, 5, 7]
    assert await h.seqs(theirs) == [6]
    assert all(d.tenant == "acme" for d, _ in await h.deliveries(theirs))
    assert [await h.cursor(e) for e in (pattern, everything, theirs)] == [7, 7, 7]
    # the default tenant's view of the acme endpoint: nothing
    assert await h.state.list_deliveries(DEFAULT_TENANT, theirs.id, None, 10, None) == []


# -- events of claimed retries ---------------------------------------------------------------


async def test_load_events_reads_runs_of_positions_and_leaves_missing_ones_none(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch, reads: list[ReadCall]
) -> None:
    monkeypatch.setattr(engine_module, "EVENT_SPAN", 10)
    h = Harness(store, StandInSender())
    a = await h.add_endpoint("wh_a")
    b = await h.add_endpoint("wh_b")
    await append(store, [f"load.n{i}" for i in range(1, 31)])  # 1-30
    events = {e.seq: e for e in await store.read_log(0, 30, 30)}
    reads.clear()
    wanted = [(a, 25), (a, 1), (b, 10), (a, 2), (b, 1), (a, 11), (a, 9), (b, 40)]
    jobs = [
        Job(replace(h.engine.new_delivery(e, events[1], 0), event_seq=seq), None)
        for e, seq in wanted
    ]

    await h.engine._load_events(jobs)

    # 1, 2, 9, 10 in one read (within 10 positions of 1); then 11, 25 and 40 alone
    assert reads == [(0, 10, 10), (10, 11, 1), (24, 25, 1), (39, 40, 1)]
    assert [j.event.seq if j.event else None for j in jobs] == [25, 1, 10, 2, 1, 11, 9, None]
    assert [j.event.type if j.event else None for j in jobs] == [
        "load.n25",
        "load.n1",
        "load.n10",
        "load.n2",
        "load.n1",
        "load.n11",
        "load.n9",
        None,
    ]


async def test_load_events_with_the_default_span(store: MemoryStore, reads: list[ReadCall]) -> None:
    assert engine_module.EVENT_SPAN == 1000
    h = Harness(store, StandInSender())
    a = await h.add_endpoint("wh_a")
    await append(store, ["load.tested"] * 3000)
    [first] = await store.read_log(0, 1, 1)
    reads.clear()
    jobs = [
        Job(replace(h.engine.new_delivery(a, first, 0), event_seq=seq), None)
        for seq in (3000, 1, 1500, 2, 3001)
    ]

    await h.engine._load_events(jobs)

    assert reads == [(0, 2, 2), (1499, 1500, 1), (2999, 3001, 2)]
    assert [j.event.seq if j.event else None for j in jobs] == [3000, 1, 1500, 2, None]


# -- attempts --------------------------------------------------------------------------------


async def test_the_pump_sends_every_queued_delivery_and_the_recorder_settles_them(
    store: MemoryStore,
) -> None:
    sender = StandInSender(latency_ms=1.5)
    h = Harness(store, sender)
    endpoints = [await h.add_endpoint(f"wh_{i}") for i in range(3)]
    seqs = await append(store, ["load.tested"] * 10)
    events = {e.seq: e for e in await store.read_log(0, 10, 10)}

    async def all_settled() -> bool:
        settled = [d.status == "succeeded" for e in endpoints for d, _ in await h.deliveries(e)]
        return len(settled) == 30 and all(settled)

    async with running(h.engine.pump_loop, h.engine.record_loop):
        assert await h.engine.dispatch_once() is False
        await eventually(all_settled)

    await h.engine.stop()
    expected = {(e.id, s, message_id(e.id, events[s].id)) for e in endpoints for s in seqs}
    assert sorted(sender.calls) == sorted(expected)  # each once
    assert h.engine.queued() == 0
    answered_at = {call: r.at_us for call, r in zip(sender.calls, sender.results, strict=True)}
    for endpoint in endpoints:
        for d, attempts in await h.deliveries(endpoint):
            assert (d.status, d.attempts, d.next_attempt_at_us) == ("succeeded", 1, None)
            at = answered_at[(endpoint.id, d.event_seq, d.message_id)]
            assert attempts == [Attempt(1, at, 200, 1.5, None, "answer 200")]
        found = await h.state.get_endpoint(endpoint.tenant, endpoint.id)
        assert found is not None
        assert found.failing_since_us is None
    assert (await h.state.stats(DEFAULT_TENANT, now_us())).by_status == {"succeeded": 30}
    assert h.disabled == []


async def test_a_failed_attempt_is_retried_by_the_claim_loop_when_due(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(now_us())
    monkeypatch.setattr(engine_module, "now_us", clock)
    monkeypatch.setattr(engine_module, "CLAIM_INTERVAL_S", 0.01)
    monkeypatch.setattr(schedule_module, "JITTER", 0.0)  # the delay is exactly 1 s
    sender = StandInSender(500, latency_ms=2.0, clock=clock)
    h = Harness(store, sender, schedule="0,1,5")
    endpoint = await h.add_endpoint("wh_a")
    [seq] = await append(store, ["load.tested"])
    first_at = clock()

    async def state_of() -> tuple[Delivery, list[Attempt]]:
        [(d, attempts)] = await h.deliveries(endpoint)
        return d, attempts

    async def attempted(times: int) -> bool:
        return (await state_of())[0].attempts == times

    async with running(h.engine.pump_loop, h.engine.record_loop, h.engine.claim_loop):
        assert await h.engine.dispatch_once() is False
        await eventually(lambda: attempted(1))
        d, attempts = await state_of()
        due = first_at + 2_000 + 1_000_000  # from the end of the attempt
        assert (d.status, d.attempts, d.next_attempt_at_us) == ("pending", 1, due)
        assert attempts == [Attempt(1, first_at, 500, 2.0, None, "answer 500")]
        found = await h.state.get_endpoint(endpoint.tenant, endpoint.id)
        assert found is not None
        assert found.failing_since_us == first_at

        clock.advance(1.0)  # 2 ms short of due: several claim rounds find nothing
        await asyncio.sleep(0.1)
        assert len(sender.calls) == 1

        clock.advance(0.002)
        await eventually(lambda: attempted(2))

    d, attempts = await state_of()
    assert (d.status, d.attempts, d.next_attempt_at_us) == ("succeeded", 2, None)
    assert attempts == [
        Attempt(1, first_at, 500, 2.0, None, "answer 500"),
        Attempt(2, due, 200, 2.0, None, "answer 200"),
    ]
    assert [call[:2] for call in sender.calls] == [(endpoint.id, seq), (endpoint.id, seq)]
    assert sender.calls[0][2] == sender.calls[1][2] == d.message_id
    found = await h.state.get_endpoint(endpoint.tenant, endpoint.id)
    assert found is not None
    assert found.failing_since_us is None
    assert h.disabled == []


async def test_a_410_fails_the_delivery_and_disables_the_endpoint(store: MemoryStore) -> None:
    sender = StandInSender(410)
    h = Harness(store, sender)
    endpoint = await h.add_endpoint("wh_gone")
    await append(store, ["load.tested"])

    async def finished() -> bool:
        return [d.status for d, _ in await h.deliveries(endpoint)] == ["failed"]

    async with running(h.engine.pump_loop, h.engine.record_loop):
        assert await h.engine.dispatch_once() is False
        await eventually(finished)

    [(d, attempts)] = await h.deliveries(endpoint)
    assert (d.attempts, d.next_attempt_at_us) == (1, None)
    assert [a.status_code for a in attempts] == [410]
    assert h.disabled == [(endpoint.id, "the receiver answered 410 Gone")]


async def test_delivery_ids_are_unique_across_rounds(store: MemoryStore) -> None:
    h = Harness(store, StandInSender())
    endpoint = await h.add_endpoint("wh_a")
    for _ in range(3):
        await append(store, ["load.tested"] * 5)
        await h.engine.dispatch_once()
    made = [d.id for d, _ in await h.deliveries(endpoint)]
    assert len(made) == len(set(made)) == 15
    assert list(itertools.accumulate(made, max)) == made  # ids sort in creation order


async def test_rounds_are_a_quarter_of_the_budget_while_publishing_comes_first(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "DISPATCH_BUDGET", 8)
    h = Harness(store, StandInSender())
    waiting = [0]
    h.engine.governor = Governor(lambda: waiting[0], busy_inflight=4)
    endpoint = await h.add_endpoint("wh_a")
    await append(store, ["load.tested"] * 20)

    await h.engine.dispatch_once()
    assert await h.seqs(endpoint) == list(range(1, 9))

    waiting[0] = 4  # publishes queue for their commit: the governor sees them
    assert h.engine.governor.fresh_wait(asyncio.get_running_loop().time()) >= 0.0
    await h.engine.dispatch_once()
    assert await h.seqs(endpoint) == list(range(1, 11))  # 8 // 4 more


async def test_a_flush_waits_for_the_results_another_flush_is_writing(store: MemoryStore) -> None:
    # With a backend of several connections, the disable path's flush must not return (and
    # let a cancellation commit) while the record loop is still writing earlier results.
    h = Harness(store, StandInSender())
    endpoint = await h.add_endpoint("wh_gate")
    (seq,) = await append(store, ["gate.x"])
    event = (await store.read_log(seq - 1, seq, 1))[0]
    delivery = h.engine.new_delivery(endpoint, event, now_us())
    await h.state.dispatch([delivery], {})
    gate, written = asyncio.Event(), asyncio.Event()
    record = h.state.record

    async def slow_record(records: Any, at_us: int) -> None:
        await gate.wait()
        await record(records, at_us)
        written.set()

    h.state.record = slow_record  # type: ignore[method-assign]
    attempt = Attempt(1, now_us(), 410, 1.0, None, "gone")
    h.engine._records.append(
        AttemptRecord(delivery.id, endpoint.id, attempt, "failed", None, False)
    )
    first = asyncio.create_task(h.engine.flush())
    await asyncio.sleep(0)  # the first flush has taken the batch and waits in record
    second = asyncio.create_task(h.engine.flush())
    done, _ = await asyncio.wait({second}, timeout=0.05)
    assert not done, "a flush returned while earlier results were still being written"
    gate.set()
    await asyncio.gather(first, second)
    assert written.is_set()
    await h.state.cancel_pending(DEFAULT_TENANT, endpoint.id, now_us())
    found = await h.state.get_delivery(DEFAULT_TENANT, delivery.id)
    assert found is not None and found[0].status == "failed"
