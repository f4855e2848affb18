"""What spans a backend's protocols: one retention floor over every sink."""

from __future__ import annotations

from tests.contract.test_delivery_store import delivery, endpoint
from tidings.envelope import Limits, PublishContext, candidates_from_json
from tidings.retention import purge_backend
from tidings.store import Backend


async def test_without_sinks_nothing_holds_retention(backend: Backend) -> None:
    assert await backend.retention_floor() is None


async def test_the_floor_is_the_lowest_of_webhooks_and_other_sinks(backend: Backend) -> None:
    await backend.deliveries.create_endpoint(endpoint("wh_a", cursor=20))
    assert await backend.retention_floor() == 21
    await backend.sink_cursors.set_sink_cursor("mqtt:behind", "default", 8, 1)
    assert await backend.retention_floor() == 9  # the bridge rule is behind the webhooks
    await backend.sink_cursors.set_sink_cursor("mqtt:behind", "default", 30, 2)
    assert await backend.retention_floor() == 21
    await backend.deliveries.dispatch([delivery("wh_a", 4)], {})
    assert await backend.retention_floor() == 4  # a pending delivery needs its event


async def test_a_purge_keeps_what_a_sink_behind_the_webhooks_needs(backend: Backend) -> None:
    bodies = [{"type": "kept.event", "data": {"n": n}} for n in range(6)]
    candidates, _ = candidates_from_json(bodies, PublishContext(tenant="default"), Limits())
    seqs = [r.seq for r in await backend.events.append(candidates)]
    await backend.deliveries.create_endpoint(endpoint("wh_a", cursor=seqs[-1]))
    await backend.sink_cursors.set_sink_cursor("mqtt:rule", "default", seqs[2], 1)
    assert await purge_backend(backend, 1e-12) == 3
    kept = await backend.events.read_log(0, seqs[-1], 100)
    assert [e.seq for e in kept] == seqs[3:]
