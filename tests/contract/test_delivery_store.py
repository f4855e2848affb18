"""The delivery state contract: endpoints' cursors, deliveries, leases, attempts, retention.

Runs against every implementation (the ``deliveries`` fixture of conftest.py); times are plain
integers chosen by the test, never the clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from tidings.store.deliveries import (
    Attempt,
    AttemptRecord,
    Delivery,
    DeliveryStats,
    DeliveryStore,
    Endpoint,
    EndpointAttempts,
    Secret,
    Status,
)
from tidings.store.postgres import deliveries as postgres_deliveries
from tidings.store.sqlite import deliveries as sqlite_deliveries

TENANT = "default"
_ids = itertools.count(1)


def endpoint(
    id_: str,
    *,
    tenant: str = TENANT,
    cursor: int = 0,
    active: bool = True,
    failing_since_us: int | None = None,
) -> Endpoint:
    return Endpoint(
        id=id_,
        tenant=tenant,
        url=f"https://example.com/{id_}",
        events=["#"],
        filter={},
        secrets=[Secret("whsec_test")],
        active=active,
        description=None,
        rate_limit=None,
        headers={},
        created_at_us=1,
        updated_at_us=1,
        cursor=cursor,
        failing_since_us=failing_since_us,
    )


def delivery(
    webhook_id: str,
    event_seq: int,
    *,
    tenant: str = TENANT,
    status: Status = "pending",
    attempts: int = 0,
    max_attempts: int = 3,
    next_at: int | None = 100,
    created: int = 1,
    updated: int = 1,
) -> Delivery:
    # ids sort in creation order, like the uuid7 ids the engine makes
    id_ = f"d{next(_ids):08d}"
    return Delivery(
        id=id_,
        tenant=tenant,
        webhook_id=webhook_id,
        event_seq=event_seq,
        event_id=f"ev{event_seq}",
        message_id=f"msg_{webhook_id}_{event_seq}",
        status=status,
        attempts=attempts,
        max_attempts=max_attempts,
        next_attempt_at_us=next_at if status == "pending" else None,
        created_at_us=created,
        updated_at_us=updated,
    )


def failure(
    d: Delivery, at_us: int, *, n: int = 1, next_at: int | None = None, code: int = 500
) -> AttemptRecord:
    status: Status = "pending" if next_at is not None else "failed"
    attempt = Attempt(n, at_us, code, 12.5, None, "oops")
    return AttemptRecord(d.id, d.webhook_id, attempt, status, next_at, False)


def success(d: Delivery, at_us: int, *, n: int = 1) -> AttemptRecord:
    attempt = Attempt(n, at_us, 200, 3.25, None, "ok")
    return AttemptRecord(d.id, d.webhook_id, attempt, "succeeded", None, True)


@pytest.fixture
def state(deliveries: DeliveryStore) -> DeliveryStore:
    return deliveries


async def with_endpoints(state: DeliveryStore, *endpoints: Endpoint) -> None:
    for e in endpoints:
        await state.create_endpoint(e)


async def fetch(state: DeliveryStore, d: Delivery) -> tuple[Delivery, list[Attempt]]:
    found = await state.get_delivery(d.tenant, d.id)
    assert found is not None
    return found


async def cursor_of(state: DeliveryStore, endpoint_id: str, tenant: str = TENANT) -> int:
    found = await state.get_endpoint(tenant, endpoint_id)
    assert found is not None
    return found.cursor


def ids(deliveries: Sequence[Delivery]) -> list[str]:
    return [d.id for d in deliveries]


# -- dispatch --------------------------------------------------------------------------------


async def test_dispatch_inserts_deliveries_and_moves_cursors(state: DeliveryStore) -> None:
    await with_endpoints(state, endpoint("wh_a"), endpoint("wh_b", cursor=3))
    made = [delivery("wh_a", 1), delivery("wh_a", 2), delivery("wh_b", 4)]

    await state.dispatch(made, {"wh_a": 2, "wh_b": 4})

    listed_a = await state.list_deliveries(TENANT, "wh_a", None, 10, None)
    listed_b = await state.list_deliveries(TENANT, "wh_b", None, 10, None)
    assert [d for d, _ in listed_a] == [made[1], made[0]]  # newest first, as stored
    assert [d for d, _ in listed_b] == [made[2]]
    assert all(attempts == [] for _, attempts in listed_a + listed_b)
    assert await cursor_of(state, "wh_a") == 2
    assert await cursor_of(state, "wh_b") == 4


async def test_dispatch_never_moves_a_cursor_backwards(state: DeliveryStore) -> None:
    await with_endpoints(state, endpoint("wh_a", cursor=10), endpoint("wh_b"))

    await state.dispatch([], {"wh_a": 5, "wh_b": 7})
    assert (await cursor_of(state, "wh_a"), await cursor_of(state, "wh_b")) == (10, 7)

    await state.dispatch([], {"wh_a": 12, "wh_b": 6, "wh_gone": 50})
    assert (await cursor_of(state, "wh_a"), await cursor_of(state, "wh_b")) == (12, 7)


async def test_deliveries_dispatched_with_a_lease_wait_for_it(state: DeliveryStore) -> None:
    await with_endpoints(state, endpoint("wh_a"))
    leased = delivery("wh_a", 1, next_at=100)
    await state.dispatch([leased], {"wh_a": 1}, lease_until_us=500)

    assert await state.claim_due(400, 10, 10_000) == []
    assert await state.claim_due(500, 10, 10_000) == []  # expired means strictly before now
    assert ids(await state.claim_due(501, 10, 10_000)) == [leased.id]


# -- claim_due -------------------------------------------------------------------------------


async def test_claim_due_leases_only_due_pending_unleased_ones_oldest_first(
    state: DeliveryStore,
) -> None:
    await with_endpoints(state, endpoint("wh_a"), endpoint("wh_b"))
    due_late = delivery("wh_a", 1, next_at=300)
    due_early = delivery("wh_b", 2, next_at=100)
    due_mid = delivery("wh_a", 3, next_at=200)
    not_due = delivery("wh_a", 4, next_at=1001)
    exactly_due = delivery("wh_b", 5, next_at=1000)
    finished = [
        delivery("wh_a", 6, status="succeeded"),
        delivery("wh_a", 7, status="failed"),
        delivery("wh_b", 8, status="cancelled"),
    ]
    await state.dispatch([due_late, due_early, due_mid, not_due, exactly_due], {})
    await state.dispatch(finished, {})

    claimed = await state.claim_due(1000, 10, 5000)

    assert ids(claimed) == [due_early.id, due_mid.id, due_late.id, exactly_due.id]
    assert claimed[0] == due_early  # the whole row comes back
    # held until 5000: claiming again before then finds nothing
    assert await state.claim_due(1000, 10, 9000) == []
    assert ids(await state.claim_due(4999, 10, 9000)) == [not_due.id]
    assert await state.claim_due(5000, 10, 9000) == []
    # the lease has run out: claimable again
    assert ids(await state.claim_due(5001, 10, 9000)) == [
        due_early.id,
        due_mid.id,
        due_late.id,
        exactly_due.id,
    ]


async def test_claim_due_takes_at_most_limit_the_longest_waiting(
    state: DeliveryStore,
) -> None:
    await with_endpoints(state, endpoint("wh_a"))
    made = [delivery("wh_a", seq, next_at=at) for seq, at in enumerate([50, 10, 40, 20, 30], 1)]
    await state.dispatch(made, {})
    by_time = sorted(made, key=lambda d: d.next_attempt_at_us or 0)

    first = await state.claim_due(100, 2, 1000)
    second = await state.claim_due(100, 2, 1000)
    third = await state.claim_due(100, 2, 1000)

    assert ids(first) == ids(by_time[:2])
    assert ids(second) == ids(by_time[2:4])
    assert ids(third) == ids(by_time[4:])
    assert await state.claim_due(100, 2, 1000) == []


async def test_released_leases_are_claimable_again(state: DeliveryStore) -> None:
    await with_endpoints(state, endpoint("wh_a"))
    made = [delivery("wh_a", 1, next_at=10), delivery("wh_a", 2, next_at=20)]
    done = delivery("wh_a", 3, status="succeeded")
    await state.dispatch([*made, done], {}, lease_until_us=10_000)
    assert await state.claim_due(100, 10, 10_000) == []

    await state.release_leases()

    assert ids(await state.claim_due(100, 10, 10_000)) == ids(made)
    assert await state.claim_due(100, 10, 10_000) == []
    await state.release_leases()
    assert ids(await state.claim_due(100, 10, 10_000)) == ids(made)
    assert (await fetch(state, done))[0].status == "succeeded"


# -- record ----------------------------------------------------------------------------------


async def test_record_logs_attempts_and_settles_deliveries(state: DeliveryStore) -> None:
    await with_endpoints(state, endpoint("wh_a"))
    retried, succeeded, exhausted = (delivery("wh_a", seq) for seq in (1, 2, 3))
    await state.dispatch([retried, succeeded, exhausted], {"wh_a": 3}, lease_until_us=10_000)
    assert await state.claim_due(100, 10, 20_000) == []  # all leased

    await state.record(
        [
            AttemptRecord(
                retried.id,
                "wh_a",
                Attempt(1, 150, None, 10_000.0, "timed out", None),
                "pending",
                900,
                False,
            ),
            AttemptRecord(
                succeeded.id, "wh_a", Attempt(1, 160, 204, 4.5, None, ""), "succeeded", None, True
            ),
            AttemptRecord(
                exhausted.id,
                "wh_a",
                Attempt(3, 170, 500, 7.0, None, "boom"),
                "failed",
                None,
                False,
            ),
        ],
        now_us=200,
    )

    got, attempts = await fetch(state, retried)
    assert (got.status, got.attempts, got.next_attempt_at_us, got.updated_at_us) == (
        "pending",
        1,
        900,
        200,
    )
    assert attempts == [Attempt(1, 150, None, 10_000.0, "timed out", None)]
    got, attempts = await fetch(state, succeeded)
    assert (got.status, got.attempts, got.next_attempt_at_us, got.updated_at_us) == (
        "succeeded",
        1,
        None,
        200,
    )
    assert attempts == [Attempt(1, 160, 204, 4.5, None, "")]
    got, attempts = await fetch(state, exhausted)
    assert (got.status, got.attempts, got.next_attempt_at_us) == ("failed", 3, None)
    assert attempts == [Attempt(3, 170, 500, 7.0, None, "boom")]
    # the lease is gone with the attempt: the retry is claimable when due, not before
    assert await state.claim_due(899, 10, 20_000) == []
    assert ids(await state.claim_due(900, 10, 20_000)) == [retried.id]


async def test_attempts_accumulate_in_the_log(state: DeliveryStore) -> None:
    await with_endpoints(state, endpoint("wh_a"))
    d = delivery("wh_a", 1)
    await state.dispatch([d], {})

    await state.record([failure(d, 100, n=1, next_at=150)], 120)
    await state.record([failure(d, 150, n=2, next_at=300, code=503)], 170)
    await state.record([success(d, 300, n=3)], 320)

    got, attempts = await fetch(state, d)
    assert (got.status, got.attempts, got.next_attempt_at_us, got.updated_at_us) == (
        "succeeded",
        3,
        None,
        320,
    )
    assert attempts == [
        Attempt(1, 100, 500, 12.5, None, "oops"),
        Attempt(2, 150, 503, 12.5, None, "oops"),
        Attempt(3, 300, 200, 3.25, None, "ok"),
    ]


async def test_a_record_does_not_revive_a_cancelled_delivery(state: DeliveryStore) -> None:
    await with_endpoints(state, endpoint("wh_a"))
    d = delivery("wh_a", 1)
    await state.dispatch([d], {}, lease_until_us=10_000)
    await state.cancel_deliveries([d.id], 50)

    await state.record([failure(d, 100, next_at=150)], 120)
    await state.record([success(d, 200)], 220)

    got, _ = await fetch(state, d)
    assert (got.status, got.attempts, got.next_attempt_at_us, got.updated_at_us) == (
        "cancelled",
        0,
        None,
        50,
    )
    assert await state.claim_due(100_000, 10, 200_000) == []
    assert (await state.stats(TENANT, 300)).by_status == {"cancelled": 1}


async def test_record_writes_each_endpoints_net_run_of_failures(
    state: DeliveryStore,
) -> None:
    await with_endpoints(
        state,
        endpoint("wh_a"),  # NULL + [fail@10, ok, fail@30, fail@40] -> 30
        endpoint("wh_b", failing_since_us=5),  # 5 + [fail@10] -> 5
        endpoint("wh_c", failing_since_us=5),  # 5 + [fail@10, ok] -> NULL
        endpoint("wh_d", failing_since_us=5),  # 5 + [ok, fail@50] -> 50
        endpoint("wh_e"),  # NULL + [fail@20, fail@25] -> 20
        endpoint("wh_f", failing_since_us=7),  # not in the batch: 7
        endpoint("wh_g"),  # NULL + [ok] -> NULL
    )
    a = [delivery("wh_a", seq) for seq in range(1, 5)]
    b, c1, c2, d1, d2, e1, e2, g = (
        delivery(w, 10 + i)
        for i, w in enumerate(["wh_b", "wh_c", "wh_c", "wh_d", "wh_d", "wh_e", "wh_e", "wh_g"])
    )
    await state.dispatch([*a, b, c1, c2, d1, d2, e1, e2, g], {})

    # one batch, in completion order, the endpoints interleaved
    await state.record(
        [
            failure(a[0], 10),
            failure(c1, 10),
            success(d1, 12),
            failure(b, 10),
            failure(e1, 20),
            success(a[1], 21),
            success(c2, 22),
            failure(e2, 25),
            failure(a[2], 30),
            success(g, 31),
            failure(a[3], 40),
            failure(d2, 50),
        ],
        now_us=60,
    )

    found = {e.id: e.failing_since_us for e in await state.list_endpoints(TENANT)}
    assert found == {
        "wh_a": 30,
        "wh_b": 5,
        "wh_c": None,
        "wh_d": 50,
        "wh_e": 20,
        "wh_f": 7,
        "wh_g": None,
    }


# -- retry and cancel ------------------------------------------------------------------------


async def test_retry_delivery_makes_a_finished_delivery_pending_for_one_more_attempt(
    state: DeliveryStore,
) -> None:
    await with_endpoints(state, endpoint("wh_a"))
    d = delivery("wh_a", 1, max_attempts=2)
    await state.dispatch([d], {})
    await state.record([failure(d, 100, n=1, next_at=150)], 110)
    await state.record([failure(d, 150, n=2)], 160)
    assert (await fetch(state, d))[0].status == "failed"

    retried = await state.retry_delivery(TENANT, d.id, 500)

    assert retried is not None
    assert (
        retried.status,
        retried.attempts,
        retried.max_attempts,
        retried.next_attempt_at_us,
        retried.updated_at_us,
    ) == ("pending", 2, 3, 500, 500)
    assert ids(await state.claim_due(500, 10, 1000)) == [d.id]
    # a pending delivery is left as it is; an unknown one, or another tenant's, is None
    again = await state.retry_delivery(TENANT, d.id, 700)
    assert again is not None
    assert (again.max_attempts, again.next_attempt_at_us, again.updated_at_us) == (3, 500, 500)
    assert await state.retry_delivery(TENANT, "nope", 700) is None
    assert await state.retry_delivery("other", d.id, 700) is None


async def test_cancel_pending_cancels_one_endpoints_pending_deliveries(
    state: DeliveryStore,
) -> None:
    await with_endpoints(state, endpoint("wh_a"), endpoint("wh_b"))
    a_pending = [delivery("wh_a", 1), delivery("wh_a", 2)]
    a_done = delivery("wh_a", 3, status="succeeded", updated=7)
    b_pending = delivery("wh_b", 1)
    await state.dispatch([*a_pending, a_done, b_pending], {})

    assert await state.cancel_pending("other", "wh_a", 40) == 0
    assert await state.cancel_pending(TENANT, "wh_a", 50) == 2
    assert await state.cancel_pending(TENANT, "wh_a", 60) == 0

    for d in a_pending:
        got, _ = await fetch(state, d)
        assert (got.status, got.next_attempt_at_us, got.updated_at_us) == ("cancelled", None, 50)
    got, _ = await fetch(state, a_done)
    assert (got.status, got.updated_at_us) == ("succeeded", 7)
    assert (await fetch(state, b_pending))[0].status == "pending"
    assert ids(await state.claim_due(1000, 10, 2000)) == [b_pending.id]


async def test_cancel_deliveries_cancels_only_those_still_pending(
    state: DeliveryStore,
) -> None:
    await with_endpoints(state, endpoint("wh_a"))
    first, second, kept = delivery("wh_a", 1), delivery("wh_a", 2), delivery("wh_a", 3)
    failed = delivery("wh_a", 4, status="failed", updated=9)
    await state.dispatch([first, second, kept, failed], {}, lease_until_us=500)

    await state.cancel_deliveries([first.id, second.id, failed.id, "unknown"], 70)

    statuses = {
        d.id: (d.status, d.next_attempt_at_us, d.updated_at_us)
        for d, _ in await state.list_deliveries(TENANT, "wh_a", None, 10, None)
    }
    assert statuses == {
        first.id: ("cancelled", None, 70),
        second.id: ("cancelled", None, 70),
        kept.id: ("pending", 100, 1),
        failed.id: ("failed", None, 9),
    }
    assert [
        d.id for d, _ in await state.list_deliveries(TENANT, "wh_a", "cancelled", 10, None)
    ] == [
        second.id,
        first.id,
    ]


# -- retention, purge, stats -----------------------------------------------------------------


async def test_retention_floor_is_the_lowest_position_still_needed(
    state: DeliveryStore,
) -> None:
    assert await state.retention_floor() is None

    await with_endpoints(state, endpoint("wh_a", cursor=9), endpoint("wh_off", active=False))
    assert await state.retention_floor() == 10  # the inactive endpoint's cursor 0 is not needed

    await state.dispatch([delivery("wh_a", 2, status="succeeded")], {})
    assert await state.retention_floor() == 10  # finished deliveries need nothing

    pending = delivery("wh_off", 4)
    await state.dispatch([pending, delivery("wh_a", 7)], {})
    assert await state.retention_floor() == 4

    await state.cancel_deliveries([pending.id], 5)
    assert await state.retention_floor() == 7

    await state.dispatch([], {"wh_a": 3})  # cursors never go back
    assert await state.retention_floor() == 7


async def test_retention_floor_with_only_pending_deliveries(state: DeliveryStore) -> None:
    await with_endpoints(state, endpoint("wh_off", active=False, cursor=2))
    assert await state.retention_floor() is None
    await state.dispatch([delivery("wh_off", 12), delivery("wh_off", 11)], {})
    assert await state.retention_floor() == 11


async def test_purge_finished_removes_old_finished_deliveries_and_their_attempts(
    state: DeliveryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in (sqlite_deliveries, postgres_deliveries):
        monkeypatch.setattr(module, "PURGE_CHUNK", 2)  # several chunks
    await with_endpoints(state, endpoint("wh_a"))
    old_done = [delivery("wh_a", seq) for seq in range(1, 6)]
    recent_done = delivery("wh_a", 6)
    old_pending = delivery("wh_a", 7)
    old_cancelled = delivery("wh_a", 8)
    await state.dispatch([*old_done, recent_done, old_pending, old_cancelled], {})
    await state.record([success(d, 90) for d in old_done], 100)
    await state.record([failure(old_pending, 90, next_at=10_000)], 100)
    await state.cancel_deliveries([old_cancelled.id], 100)
    await state.record([success(recent_done, 400)], 500)

    assert await state.purge_finished(101) == 6

    left = {
        d.id: attempts
        for d, attempts in await state.list_deliveries(TENANT, "wh_a", None, 20, None)
    }
    assert set(left) == {recent_done.id, old_pending.id}
    assert len(left[old_pending.id]) == 1  # a pending delivery keeps its log
    for d in old_done:
        assert await state.get_delivery(TENANT, d.id) is None
    stats = await state.stats(TENANT, 600)
    assert stats.by_status == {"pending": 1, "succeeded": 1}
    # the purged deliveries' attempts are gone too
    assert stats.attempts_last_hour == {"succeeded": 1, "failed": 1}
    assert await state.purge_finished(101) == 0


async def test_purge_finished_never_removes_pending_deliveries(
    state: DeliveryStore,
) -> None:
    await with_endpoints(state, endpoint("wh_a"))
    pending = [delivery("wh_a", seq, updated=1) for seq in range(1, 4)]
    await state.dispatch(pending, {})

    assert await state.purge_finished(10**15) == 0
    assert len(await state.list_deliveries(TENANT, "wh_a", "pending", 10, None)) == 3


async def test_stats_count_one_tenants_deliveries_and_recent_attempts(
    state: DeliveryStore,
) -> None:
    hour = 3_600_000_000
    now = 10 * hour
    await with_endpoints(state, endpoint("wh_a"), endpoint("wh_x", tenant="other"))
    p1 = delivery("wh_a", 1, created=now - 500)
    p2 = delivery("wh_a", 2, created=now - 900)
    ok = delivery("wh_a", 3, created=now - 2 * hour)
    bad = delivery("wh_a", 4)
    gone = delivery("wh_a", 5)
    theirs = [delivery("wh_x", 6, tenant="other", created=1), delivery("wh_x", 7, tenant="other")]
    await state.dispatch([p1, p2, ok, bad, gone, *theirs], {})
    await state.record(
        [
            failure(ok, now - 2 * hour, n=1, next_at=now - hour),  # more than an hour ago
            failure(p1, now - 100, n=1, next_at=now + 100),
            failure(bad, now - hour, n=1),  # exactly an hour ago still counts
            failure(theirs[0], now - 10, n=1),
        ],
        now - 50,
    )
    await state.record([success(ok, now - 60, n=2), success(theirs[1], now - 5)], now - 40)
    await state.cancel_deliveries([gone.id], now - 30)

    stats = await state.stats(TENANT, now)

    assert stats == DeliveryStats(
        by_status={"pending": 2, "succeeded": 1, "failed": 1, "cancelled": 1},
        oldest_pending_us=now - 900,
        attempts_last_hour={"succeeded": 1, "failed": 2},
    )
    other = await state.stats("other", now)
    assert other == DeliveryStats(
        {"failed": 1, "succeeded": 1}, None, {"failed": 1, "succeeded": 1}
    )
    assert await state.stats("nobody", now) == DeliveryStats({}, None, {})


async def test_endpoint_attempts_count_each_endpoints_attempts_since_a_time(
    state: DeliveryStore,
) -> None:
    day = 24 * 3_600_000_000
    now = 10 * day
    await with_endpoints(
        state,
        endpoint("wh_a"),
        endpoint("wh_b"),
        endpoint("wh_c"),
        endpoint("wh_x", tenant="other"),
    )
    a1, a2, b1 = delivery("wh_a", 1), delivery("wh_a", 2), delivery("wh_b", 3)
    old, theirs = delivery("wh_c", 4), delivery("wh_x", 5, tenant="other")
    await state.dispatch([a1, a2, b1, old, theirs], {})
    await state.record(
        [
            failure(a1, now - day, n=1, next_at=now - 10),  # exactly at the start: counted
            failure(b1, now - 100, n=1, code=503),
            failure(old, now - day - 1, n=1),  # before the window
            failure(theirs, now - 5, n=1),
        ],
        now - 50,
    )
    await state.record([success(a1, now - 20, n=2), success(a2, now - 10)], now - 5)

    found = await state.endpoint_attempts(TENANT, now - day)

    assert found == {"wh_a": EndpointAttempts(2, 1), "wh_b": EndpointAttempts(0, 1)}
    assert await state.endpoint_attempts("other", now - day) == {"wh_x": EndpointAttempts(0, 1)}
    assert await state.endpoint_attempts("nobody", 0) == {}


# -- endpoints -------------------------------------------------------------------------------


async def test_an_endpoint_reads_back_with_every_field(state: DeliveryStore) -> None:
    created = endpoint("wh_full", cursor=7, failing_since_us=55)
    created.events = ["order.*", "user.#"]
    created.filter = {"source": ["shop"]}
    created.secrets = [Secret("whsec_new"), Secret("whsec_old", expires_at_us=999)]
    created.description = "orders"
    created.rate_limit = 2.5
    created.headers = {"X-Team": "billing"}
    created.disabled_reason = None
    await state.create_endpoint(created)
    found = await state.get_endpoint(TENANT, "wh_full")
    assert found == created
    assert found is not created


async def test_endpoints_are_scoped_to_their_tenant(state: DeliveryStore) -> None:
    await with_endpoints(state, endpoint("wh_a"), endpoint("wh_b", tenant="other"))
    assert await state.get_endpoint("other", "wh_a") is None
    assert [e.id for e in await state.list_endpoints(TENANT)] == ["wh_a"]
    assert [e.id for e in await state.list_endpoints("other")] == ["wh_b"]
    assert sorted(e.id for e in await state.list_endpoints(None)) == ["wh_a", "wh_b"]
    assert not await state.delete_endpoint("other", "wh_a")
    assert await state.get_endpoint(TENANT, "wh_a") is not None


async def test_endpoints_list_oldest_first(state: DeliveryStore) -> None:
    newer, older = endpoint("wh_1"), endpoint("wh_2")
    newer.created_at_us, older.created_at_us = 20, 10
    await with_endpoints(state, newer, older)
    assert [e.id for e in await state.list_endpoints(TENANT)] == ["wh_2", "wh_1"]


async def test_saving_an_endpoint_changes_it_but_never_its_cursor(state: DeliveryStore) -> None:
    await with_endpoints(state, endpoint("wh_a", cursor=5))
    await state.dispatch([], {"wh_a": 9})
    changed = endpoint("wh_a", cursor=0, active=False)
    changed.url = "https://example.com/moved"
    changed.disabled_reason = "gone"
    changed.updated_at_us = 42
    await state.save_endpoint(changed)
    found = await state.get_endpoint(TENANT, "wh_a")
    assert found is not None
    assert (found.url, found.active, found.disabled_reason) == (changed.url, False, "gone")
    assert (found.updated_at_us, found.cursor) == (42, 9)


async def test_deleting_an_endpoint_cancels_its_pending_deliveries(state: DeliveryStore) -> None:
    await with_endpoints(state, endpoint("wh_a"), endpoint("wh_b"))
    mine, theirs = delivery("wh_a", 1), delivery("wh_b", 1)
    await state.dispatch([mine, theirs], {})
    assert await state.delete_endpoint(TENANT, "wh_a", now_us=77)
    assert await state.get_endpoint(TENANT, "wh_a") is None
    assert not await state.delete_endpoint(TENANT, "wh_a")
    cancelled, _ = await fetch(state, mine)
    assert (cancelled.status, cancelled.next_attempt_at_us, cancelled.updated_at_us) == (
        "cancelled",
        None,
        77,
    )
    assert (await fetch(state, theirs))[0].status == "pending"


# -- reading deliveries ----------------------------------------------------------------------


async def test_deliveries_list_newest_first_by_status_and_page_before_an_id(
    state: DeliveryStore,
) -> None:
    await with_endpoints(state, endpoint("wh_a"), endpoint("wh_b"))
    made = [delivery("wh_a", seq) for seq in range(1, 6)]
    done = delivery("wh_a", 6, status="succeeded")
    await state.dispatch([*made, done, delivery("wh_b", 1)], {})
    page = await state.list_deliveries(TENANT, "wh_a", None, 3, None)
    assert [d.id for d, _ in page] == [done.id, made[4].id, made[3].id]
    after = await state.list_deliveries(TENANT, "wh_a", None, 3, page[-1][0].id)
    assert [d.id for d, _ in after] == [made[2].id, made[1].id, made[0].id]
    pending = await state.list_deliveries(TENANT, "wh_a", "pending", 10, None)
    assert len(pending) == 5 and all(d.status == "pending" for d, _ in pending)
    assert await state.list_deliveries("other", "wh_a", None, 10, None) == []


async def test_a_delivery_of_another_tenant_reads_as_none(state: DeliveryStore) -> None:
    await with_endpoints(state, endpoint("wh_a"))
    d = delivery("wh_a", 1)
    await state.dispatch([d], {})
    assert await state.get_delivery("other", d.id) is None
    assert await state.retry_delivery("other", d.id, 5) is None
    assert await state.get_delivery(TENANT, "d-unknown") is None
