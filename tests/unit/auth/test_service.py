"""The auth service on the in-memory store: the key ring, revocation, limits, refusals."""

from __future__ import annotations

import asyncio

import pytest

from tidings.auth.audit import Auditor
from tidings.auth.principal import Principal, anonymous
from tidings.auth.scopes import Scope
from tidings.auth.service import AuthService, KeySpec
from tidings.envelope import Limits
from tidings.errors import TidingsError
from tidings.publish import Publisher
from tidings.settings import Settings
from tidings.store import Query
from tidings.store.auth import ApiKey
from tidings.streams.registry import StreamRegistry
from tidings.testing import MemoryAuthStore, MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SlowList(MemoryAuthStore):
    """Lists keys only when told to, so a test can act while a reload reads."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        found = await super().list_keys(tenant)
        await self.gate.wait()
        return found


ROOT = Principal("default", frozenset({Scope.ROOT}), "127.0.0.1")


async def _service(store: MemoryAuthStore | None = None) -> tuple[AuthService, MemoryStore]:
    events = MemoryStore()
    await events.open()
    auditor = Auditor(Publisher(events), Limits())
    service = AuthService(
        Settings(auth=True), store or MemoryAuthStore(), auditor, StreamRegistry(), clock=Clock()
    )
    return service, events


async def test_a_created_key_authenticates_and_a_revoked_one_at_once_does_not() -> None:
    service, _ = await _service()
    key, secret = await service.create_key(ROOT, KeySpec("ci", frozenset({Scope.PUBLISH})))
    assert await service.authenticate(secret) == key
    assert await service.authenticate(secret + "x") is None
    await service.revoke_key(ROOT, key.id)
    assert await service.authenticate(secret) is None


async def test_a_reload_read_before_a_revocation_does_not_bring_the_key_back() -> None:
    store = SlowList()
    store.gate.set()
    service, _ = await _service(store)
    key, secret = await service.create_key(ROOT, KeySpec("ci", frozenset({Scope.PUBLISH})))
    store.gate.clear()
    reload = asyncio.create_task(service.reload())
    await asyncio.sleep(0)  # the reload has read the list (key still active) and waits
    await service.revoke_key(ROOT, key.id)
    store.gate.set()
    await reload
    assert await service.authenticate(secret) is None


async def test_a_key_created_on_another_node_is_found_in_the_store() -> None:
    store = MemoryAuthStore()
    service, _ = await _service(store)
    other, _ = await _service(store)
    _, secret = await other.create_key(ROOT, KeySpec("ci", frozenset({Scope.PUBLISH})))
    assert await service.authenticate(secret) is not None


async def test_the_rate_limit_refuses_with_retry_after_and_recovers() -> None:
    service, _ = await _service()
    spec = KeySpec("ci", frozenset({Scope.PUBLISH}), rate_limit=2)
    key, _ = await service.create_key(ROOT, spec)
    caller = Principal("default", frozenset({Scope.PUBLISH}), "10.0.0.1", key)
    service.check_rate(caller, 2)
    with pytest.raises(TidingsError) as caught:
        service.check_rate(caller, 1)
    assert (caught.value.status, caught.value.code) == (429, "rate_limited")
    assert caught.value.headers["Retry-After"] == "1"
    assert isinstance(service.clock, Clock)
    service.clock.now += 0.5
    service.check_rate(caller, 1)
    service.check_rate(anonymous(), 10_000)  # auth off: no limit


async def test_refusals_reach_the_audit_trail_throttled() -> None:
    service, events = await _service()
    for n in range(50):
        service.refused("unknown", f"tdk_{n:08d}", "203.0.113.9")
    await service.auditor.drain()
    audit = await events.query("default", Query(limit=100))
    refused = [e for e in audit if e.type == "tidings.audit.auth.refused"]
    assert len(refused) == 5
    assert {e.source for e in refused} == {"tidings"}


async def test_an_admin_cannot_see_or_revoke_another_tenants_key() -> None:
    store = MemoryAuthStore()
    service, _ = await _service(store)
    await service.create_tenant(ROOT, "acme", "Acme")
    theirs, _ = await service.create_key(
        ROOT, KeySpec("x", frozenset({Scope.PUBLISH}), tenant="acme")
    )
    admin = Principal("default", frozenset({Scope.ADMIN}), "10.0.0.1")
    with pytest.raises(TidingsError) as caught:
        await service.revoke_key(admin, theirs.id)
    assert caught.value.status == 404
    with pytest.raises(TidingsError) as caught:
        await service.create_key(admin, KeySpec("x", frozenset({Scope.ROOT})))
    assert caught.value.status == 403
    assert [k.id for k in await service.list_keys(admin, None)] == []
