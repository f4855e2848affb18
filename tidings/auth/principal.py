"""Who is asking: the key a request was authenticated with, put into its ASGI scope."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tidings.auth.scopes import Scope, allows
from tidings.envelope import DEFAULT_TENANT
from tidings.errors import TidingsError
from tidings.store.auth import ApiKey

SCOPE_KEY = "tidings.principal"  # the ASGI scope entry the middleware sets


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request. With auth off it is the anonymous caller of ``default``
    that may do everything (the server listens on loopback only)."""

    tenant: str
    scopes: frozenset[Scope]
    address: str
    key: ApiKey | None = None  # None: auth is off

    @property
    def prefix(self) -> str | None:
        return self.key.prefix if self.key is not None else None

    @property
    def key_id(self) -> str | None:
        return self.key.id if self.key is not None else None

    def can(self, scope: Scope) -> bool:
        return allows(self.scopes, scope)

    @property
    def is_root(self) -> bool:
        return Scope.ROOT in self.scopes

    def tenant_for(self, named: str | None) -> str:
        """The tenant an action names, or the caller's own. Only root may name another."""
        if named is None or named == self.tenant:
            return self.tenant
        if not self.is_root:
            raise TidingsError(
                403, "forbidden", "acting in another tenant needs a key with the root scope"
            )
        return named

    def actor(self) -> dict[str, Any]:
        """Who did it, as audit events record it: never the key, only its prefix."""
        return {"key_prefix": self.prefix, "key_id": self.key_id, "address": self.address}


ANONYMOUS_SCOPES = frozenset(Scope)


def anonymous(address: str = "") -> Principal:
    return Principal(DEFAULT_TENANT, ANONYMOUS_SCOPES, address)


_ANONYMOUS = anonymous()


def principal_of(scope: Mapping[str, Any]) -> Principal:
    """The caller of a request (the anonymous one where no middleware set it)."""
    found: Principal | None = scope.get(SCOPE_KEY)
    return found if found is not None else _ANONYMOUS


def client_address(scope: Mapping[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""
