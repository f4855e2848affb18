"""The leases contract: one holder at a time, renewed while held, taken over after expiry."""

from __future__ import annotations

import pytest

from tidings.store.leases import Lease, Leases

TTL = 10_000_000  # 10 s in microseconds
T0 = 1_000_000_000


async def test_a_free_lease_is_acquired_for_its_time_to_live(leases: Leases) -> None:
    assert await leases.get("retention") is None
    lease = await leases.acquire("retention", "node-a", T0, TTL)
    assert lease == Lease("retention", "default", "node-a", T0 + TTL, 1)
    assert await leases.get("retention") == lease
    assert lease.held_by("node-a", T0 + TTL - 1)
    assert not lease.held_by("node-a", T0 + TTL)
    assert not lease.held_by("node-b", T0)


async def test_a_live_lease_is_refused_to_another_holder(leases: Leases) -> None:
    await leases.acquire("webhook:wh_1", "node-a", T0, TTL, tenant="acme")
    assert await leases.acquire("webhook:wh_1", "node-b", T0 + TTL - 1, TTL) is None
    held = await leases.get("webhook:wh_1")
    assert held is not None and (held.holder, held.tenant) == ("node-a", "acme")


async def test_acquiring_a_lease_already_held_renews_it(leases: Leases) -> None:
    await leases.acquire("bridge", "node-a", T0, TTL)
    again = await leases.acquire("bridge", "node-a", T0 + 5, TTL)
    assert again == Lease("bridge", "default", "node-a", T0 + 5 + TTL, 1)


async def test_an_expired_lease_is_taken_over_with_a_new_generation(leases: Leases) -> None:
    await leases.acquire("bridge", "node-a", T0, TTL)
    taken = await leases.acquire("bridge", "node-b", T0 + TTL, TTL)
    assert taken == Lease("bridge", "default", "node-b", T0 + 2 * TTL, 2)
    # The old holder, back from a pause, can neither renew nor release it.
    assert await leases.renew("bridge", "node-a", T0 + TTL + 1, TTL) is None
    assert not await leases.release("bridge", "node-a")
    assert await leases.get("bridge") == taken


async def test_renewing_extends_a_live_lease_only(leases: Leases) -> None:
    await leases.acquire("bridge", "node-a", T0, TTL)
    renewed = await leases.renew("bridge", "node-a", T0 + TTL - 1, TTL)
    assert renewed == Lease("bridge", "default", "node-a", T0 + 2 * TTL - 1, 1)
    assert await leases.renew("bridge", "node-a", T0 + 2 * TTL - 1, TTL) is None  # expired
    assert await leases.renew("never-held", "node-a", T0, TTL) is None


async def test_a_released_lease_is_free_at_once_and_keeps_counting_generations(
    leases: Leases,
) -> None:
    await leases.acquire("bridge", "node-a", T0, TTL)
    assert await leases.release("bridge", "node-a")
    assert not await leases.release("bridge", "node-a")  # released already
    taken = await leases.acquire("bridge", "node-b", T0 + 1, TTL)
    assert taken is not None and taken.generation == 2
    assert await leases.release("bridge", "node-b")
    back = await leases.acquire("bridge", "node-a", T0 + 2, TTL)
    assert back is not None and back.generation == 3


async def test_leases_are_independent_of_each_other(leases: Leases) -> None:
    assert await leases.acquire("a", "node-a", T0, TTL) is not None
    assert await leases.acquire("b", "node-b", T0, TTL) is not None
    assert await leases.acquire("a", "node-b", T0, TTL) is None


async def test_a_lease_without_a_positive_time_to_live_is_refused(leases: Leases) -> None:
    with pytest.raises(ValueError):
        await leases.acquire("a", "node-a", T0, 0)
    await leases.acquire("a", "node-a", T0, TTL)
    with pytest.raises(ValueError):
        await leases.renew("a", "node-a", T0, -1)
