"""The auth part of a running hub: the key ring, limits, bootstrap, key and tenant admin."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tidings.auth.audit import REFUSALS, Auditor
from tidings.auth.keys import NewKey, hash_key
from tidings.auth.limits import RefusalGate, StreamSlots, TokenBucket, retry_after
from tidings.auth.origins import OriginPolicy, parse_origins
from tidings.auth.principal import SCOPE_KEY, Principal
from tidings.auth.scopes import Scope
from tidings.envelope import DEFAULT_TENANT
from tidings.envelope.timefmt import format_us, now_us
from tidings.errors import TidingsError
from tidings.settings import Settings
from tidings.store.auth import ApiKey, AuthStore, Tenant
from tidings.streams.registry import StreamRegistry
from tidings.tasks import Supervisor

log = logging.getLogger("tidings.auth")
DEFAULT_MAX_STREAMS = 5
REFRESH_S = 5.0  # how often keys are reloaded (revocations made by other nodes)
UNKNOWN_TTL_S = 2.0  # a hash found to be no key is not looked up again this long
UNKNOWN_CAPACITY = 10_000  # such hashes remembered at most
STREAM_RETRY_AFTER_S = 5  # Retry-After of too_many_streams: a stream rarely ends sooner


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or name) reaches this machine only."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def auth_enabled(settings: Settings) -> bool:
    """``TIDINGS_AUTH`` when set, else on unless the server listens on loopback only."""
    if settings.auth is not None:
        return settings.auth
    return not is_loopback(settings.host)


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What ``POST /v1/keys`` asks for, validated."""

    name: str
    scopes: frozenset[Scope]
    tenant: str | None = None
    rate_limit: float | None = None
    max_streams: int = DEFAULT_MAX_STREAMS


def key_dict(key: ApiKey, secret: str | None = None) -> dict[str, Any]:
    """A key as the API returns it: never the secret, except once, on create."""
    shown: dict[str, Any] = {"id": key.id}
    if secret is not None:
        shown["key"] = secret
    shown.update(
        prefix=key.prefix,
        name=key.name,
        scopes=sorted(key.scopes),
        tenant=key.tenant,
        rate_limit=key.rate_limit,
        max_streams=key.max_streams,
        created_at=format_us(key.created_at_us),
        revoked_at=format_us(key.revoked_at_us) if key.revoked_at_us is not None else None,
    )
    return shown


def tenant_dict(tenant: Tenant) -> dict[str, Any]:
    return {"id": tenant.id, "name": tenant.name, "created_at": format_us(tenant.created_at_us)}


class AuthService:
    """Keys in memory for the hot path; the store for everything that must last."""

    def __init__(
        self,
        settings: Settings,
        store: AuthStore,
        auditor: Auditor,
        streams: StreamRegistry,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.enabled = auth_enabled(settings)  # keys required
        self.store = store
        self.auditor = auditor
        self.streams = streams  # closed for a revoked key
        self.clock = clock  # monotonic seconds: token buckets and throttles
        self.origins = OriginPolicy(parse_origins(settings.cors_origins))
        self.slots = StreamSlots()  # open streams per key
        self.refusals = RefusalGate()  # which refusals reach the audit trail
        self._by_hash: dict[str, ApiKey] = {}  # active keys by the hash of their secret
        self._unknown: OrderedDict[str, float] = OrderedDict()  # hash -> when found unknown
        self._buckets: dict[str, TokenBucket] = {}  # by key id, for keys with a rate limit
        self._changes = 0  # keys created or revoked here: a reload read before one is stale

    # -- life cycle -------------------------------------------------------------------------

    async def start(self, tasks: Supervisor) -> None:
        await self.reload()
        if self.enabled:
            await self._bootstrap()
            tasks.start("auth-refresh", self._refresh)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            await self.reload()

    async def reload(self) -> None:
        """Take the keys from the store; streams of keys revoked meanwhile are closed."""
        changes = self._changes
        listed = await self.store.list_keys()
        if changes != self._changes:
            # A key was created or revoked here while the list was read: the list may predate
            # it (and bring a revoked key back). The next reload reads again.
            return
        fresh = {k.hash: k for k in listed if k.active}
        gone = [k for h, k in self._by_hash.items() if h not in fresh]
        self._by_hash = fresh
        for key in gone:
            self._forget(key)

    async def _bootstrap(self) -> None:
        """First start with auth on and no key: a root key of ``default``, shown once."""
        if await self.store.count_active_keys():
            return
        chosen = self.settings.bootstrap_key
        new = NewKey.generate(chosen)
        key = ApiKey(
            id=new.id,
            tenant=DEFAULT_TENANT,
            name="bootstrap",
            prefix=new.prefix,
            hash=new.hash,
            scopes=(Scope.ROOT.value,),
            rate_limit=None,
            max_streams=DEFAULT_MAX_STREAMS,
            created_at_us=now_us(),
        )
        await self.store.create_key(key)
        self._by_hash[key.hash] = key
        await self.auditor.record(
            DEFAULT_TENANT, "key", "created", None, {"key": key_dict(key), "bootstrap": True}
        )
        if chosen is not None:
            log.info("root key %s... created from TIDINGS_BOOTSTRAP_KEY", key.prefix)
            return
        # Printed, never logged: log files are kept and shipped; this is shown once.
        print(
            "\n  Tidings created a root API key. It is shown this once; keep it safe:\n\n"
            f"    {new.secret}\n\n"
            "  Send it as `X-API-Key: <key>` (or `tidings ... --key`, TIDINGS_KEY) and create\n"
            "  narrower keys with `tidings keys create`.\n",
            file=sys.stderr,
            flush=True,
        )

    # -- the hot path -----------------------------------------------------------------------

    async def authenticate(self, secret: str) -> ApiKey | None:
        """The active key with this secret, or None."""
        digest = hash_key(secret)
        key = self._by_hash.get(digest)
        if key is not None:
            return key
        now = self.clock()
        seen = self._unknown.get(digest)
        if seen is not None and now - seen < UNKNOWN_TTL_S:
            return None
        found = await self.store.key_by_hash(digest)  # created on another node just now?
        if found is not None and found.active:
            self._by_hash[digest] = found
            return found
        self._unknown[digest] = now
        self._unknown.move_to_end(digest)
        while len(self._unknown) > UNKNOWN_CAPACITY:
            self._unknown.popitem(last=False)
        return None

    def check_rate(self, principal: Principal, events: int) -> None:
        """429 ``rate_limited`` when the caller's key is past its events per second."""
        key = principal.key
        if key is None or key.rate_limit is None:
            return
        bucket = self._buckets.get(key.id)
        if bucket is None:
            bucket = self._buckets[key.id] = TokenBucket(key.rate_limit, self.clock())
        wait = bucket.take(events, self.clock())
        if wait:
            REFUSALS.labels("rate_limited").inc()
            raise TidingsError(
                429,
                "rate_limited",
                f"this key may publish {key.rate_limit:g} events per second; retry later",
                headers={"Retry-After": retry_after(wait)},
            )

    def too_many_streams(self, key: ApiKey) -> TidingsError:
        return TidingsError(
            429,
            "too_many_streams",
            f"this key has {self.slots.open(key.id)} open streams, its limit "
            f"(max_streams {key.max_streams}); close one first",
            headers={"Retry-After": str(STREAM_RETRY_AFTER_S)},
        )

    def refused(
        self, reason: str, prefix: str | None, address: str, tenant: str = DEFAULT_TENANT
    ) -> None:
        """Count a refusal; record it in the audit trail unless throttled."""
        REFUSALS.labels(reason).inc()
        left_out = self.refusals.admit(prefix or "", address, self.clock())
        if left_out is None:
            return
        data: dict[str, Any] = {"reason": reason, "key_prefix": prefix, "address": address}
        if left_out:
            data["refusals_not_recorded"] = left_out
        self.auditor.record_later(tenant, "auth", "refused", data)

    # -- tenants ----------------------------------------------------------------------------

    async def create_tenant(self, actor: Principal, tenant_id: str, name: str) -> Tenant:
        tenant = Tenant(tenant_id, name, now_us())
        if not await self.store.create_tenant(tenant):
            raise TidingsError(409, "tenant_exists", f"a tenant {tenant_id!r} exists already")
        await self.auditor.record(
            tenant.id, "tenant", "created", actor, {"tenant": tenant_dict(tenant)}
        )
        return tenant

    async def list_tenants(self) -> list[Tenant]:
        return await self.store.list_tenants()

    # -- keys -------------------------------------------------------------------------------

    async def create_key(self, actor: Principal, spec: KeySpec) -> tuple[ApiKey, str]:
        tenant = actor.tenant_for(spec.tenant)
        if Scope.ROOT in spec.scopes and not actor.is_root:
            raise TidingsError(403, "forbidden", "only a root key can create a root key")
        if await self.store.get_tenant(tenant) is None:
            raise TidingsError(
                422,
                "validation_error",
                f"no tenant {tenant!r}",
                [{"loc": ["body", "tenant"], "msg": f"no tenant {tenant!r}; create it first"}],
            )
        new = NewKey.generate()
        key = ApiKey(
            id=new.id,
            tenant=tenant,
            name=spec.name,
            prefix=new.prefix,
            hash=new.hash,
            scopes=tuple(sorted(spec.scopes)),
            rate_limit=spec.rate_limit,
            max_streams=spec.max_streams,
            created_at_us=now_us(),
        )
        await self.store.create_key(key)
        self._changes += 1
        self._by_hash[key.hash] = key
        await self.auditor.record(tenant, "key", "created", actor, {"key": key_dict(key)})
        return key, new.secret

    async def visible_key(self, actor: Principal, key_id: str) -> ApiKey:
        """A key of the caller's tenant (any tenant for root); 404 otherwise."""
        key = await self.store.get_key(key_id)
        if key is None or (key.tenant != actor.tenant and not actor.is_root):
            raise TidingsError(404, "key_not_found", f"no key with id {key_id!r}")
        return key

    async def list_keys(self, actor: Principal, tenant: str | None) -> list[ApiKey]:
        if tenant is None:
            return await self.store.list_keys(None if actor.is_root else actor.tenant)
        return await self.store.list_keys(actor.tenant_for(tenant))

    async def revoke_key(self, actor: Principal, key_id: str) -> None:
        key = await self.visible_key(actor, key_id)
        revoked = await self.store.revoke_key(key.id, now_us())
        self._changes += 1
        if revoked is None:
            return  # revoked before: nothing changes
        self._by_hash.pop(revoked.hash, None)
        self._forget(revoked)
        await self.auditor.record(key.tenant, "key", "revoked", actor, {"key": key_dict(revoked)})

    def _forget(self, key: ApiKey) -> None:
        """A revoked key: no bucket, and its open streams told and closed at once."""
        self._buckets.pop(key.id, None)
        closed = self.streams.end_where(
            lambda scope: _key_id_of(scope) == key.id,
            "key_revoked",
            {"message": "the API key of this stream was revoked"},
        )
        if closed:
            log.info("closed %d streams of revoked key %s", closed, key.prefix)


def _key_id_of(scope: Any) -> str | None:
    principal: Principal | None = scope.get(SCOPE_KEY) if scope else None
    return principal.key_id if principal is not None else None
