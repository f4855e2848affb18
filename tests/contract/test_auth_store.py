"""Tenants and keys: one suite for every implementation of ``AuthStore``."""

from __future__ import annotations

import pytest

from tidings.auth.keys import NewKey
from tidings.store import ApiKey, AuthStore, Tenant


@pytest.fixture
def auth(auth_store: AuthStore) -> AuthStore:
    return auth_store


def _key(tenant: str = "default", created: int = 1, **changes: object) -> ApiKey:
    new = NewKey.generate()
    values: dict[str, object] = {
        "id": new.id,
        "tenant": tenant,
        "name": "ci",
        "prefix": new.prefix,
        "hash": new.hash,
        "scopes": ("publish", "subscribe"),
        "rate_limit": 50.0,
        "max_streams": 5,
        "created_at_us": created,
        **changes,
    }
    return ApiKey(**values)  # type: ignore[arg-type]


async def test_the_default_tenant_exists_from_the_start(auth: AuthStore) -> None:
    default = await auth.get_tenant("default")
    assert default is not None and default.id == "default"
    assert [t.id for t in await auth.list_tenants()] == ["default"]


async def test_a_tenant_is_created_once(auth: AuthStore) -> None:
    assert await auth.create_tenant(Tenant("acme", "Acme Corp", 10))
    assert not await auth.create_tenant(Tenant("acme", "Someone else", 20))
    assert await auth.get_tenant("acme") == Tenant("acme", "Acme Corp", 10)
    assert await auth.get_tenant("nobody") is None
    assert {t.id for t in await auth.list_tenants()} == {"default", "acme"}


async def test_a_key_is_found_by_id_and_by_hash_with_every_field(auth: AuthStore) -> None:
    key = _key(rate_limit=None, scopes=("admin",), max_streams=0)
    await auth.create_key(key)
    assert await auth.get_key(key.id) == key
    assert await auth.key_by_hash(key.hash) == key
    assert await auth.key_by_hash("0" * 64) is None
    assert await auth.get_key("key_nothing") is None


async def test_keys_are_listed_per_tenant_oldest_first(auth: AuthStore) -> None:
    await auth.create_tenant(Tenant("acme", "acme", 1))
    first, second, other = _key(created=1), _key(created=2), _key("acme", created=3)
    for key in (second, other, first):
        await auth.create_key(key)
    assert [k.id for k in await auth.list_keys("default")] == [first.id, second.id]
    assert [k.id for k in await auth.list_keys("acme")] == [other.id]
    assert [k.id for k in await auth.list_keys()] == [first.id, second.id, other.id]
    assert await auth.list_keys("nobody") == []


async def test_a_revoked_key_stays_listed_with_its_time(auth: AuthStore) -> None:
    key = _key()
    await auth.create_key(key)
    assert await auth.count_active_keys() == 1
    revoked = await auth.revoke_key(key.id, 500)
    assert revoked is not None and revoked.revoked_at_us == 500 and not revoked.active
    assert await auth.revoke_key(key.id, 600) is None  # once only
    assert await auth.revoke_key("key_nothing", 600) is None
    found = await auth.key_by_hash(key.hash)
    assert found is not None and found.revoked_at_us == 500
    assert await auth.count_active_keys() == 0
    assert (await auth.list_keys())[0].revoked_at_us == 500
