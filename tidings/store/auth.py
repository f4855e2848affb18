"""Tenants and API keys: the protocol the auth part uses.

Each store implementation provides one (tidings/store/sqlite/auth.py for the embedded store,
``MemoryAuthStore`` in ``tidings.testing``); tests/contract runs one suite against each.
Keys are stored by the SHA-256 of the secret, never the secret itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    created_at_us: int


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str  # key_...: how lists and the API name a key
    tenant: str
    name: str
    prefix: str  # the first characters of the secret, to recognise it
    hash: str  # hex SHA-256 of the secret
    scopes: tuple[str, ...]
    rate_limit: float | None  # events per second; None: unlimited
    max_streams: int  # open SSE and WebSocket connections at once
    created_at_us: int
    revoked_at_us: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at_us is None


class AuthStore(Protocol):
    """Tenants and keys. ``default`` exists from the start."""

    async def create_tenant(self, tenant: Tenant) -> bool:
        """Store a new tenant; False (and nothing changed) when its id is taken."""

    async def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    async def list_tenants(self) -> list[Tenant]:
        """Every tenant, oldest first."""

    async def create_key(self, key: ApiKey) -> None:
        """Store a new key (its tenant exists; its id and hash are new)."""

    async def get_key(self, key_id: str) -> ApiKey | None:
        """A key by id, revoked or not."""

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        """A key by the hash of its secret, revoked or not."""

    async def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        """Keys of one tenant (every tenant when None), revoked ones too, oldest first."""

    async def revoke_key(self, key_id: str, at_us: int) -> ApiKey | None:
        """Revoke an active key; the revoked key, or None when none was active by that id."""

    async def count_active_keys(self) -> int:
        """Keys not revoked, in every tenant (none: the first start creates a root key)."""
