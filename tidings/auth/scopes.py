"""Scopes and tenant ids: what a key may do, and which names a tenant may have."""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum

from tidings.errors import TidingsError


class Scope(StrEnum):
    PUBLISH = "publish"  # POST /v1/events
    SUBSCRIBE = "subscribe"  # GET events, export, stream, ws
    ADMIN = "admin"  # webhooks, deliveries, dead letters, stats, keys of its own tenant
    ROOT = "root"  # everything, in every tenant: tenants, any tenant's keys, /metrics


ALL_SCOPES = tuple(s.value for s in Scope)
TENANT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def parse_scopes(values: Iterable[object], loc: list[str | int]) -> frozenset[Scope]:
    """Known scopes from a list; 422 ``invalid_scopes`` naming every unknown one."""
    given = list(values)
    unknown = [v for v in given if not isinstance(v, str) or v not in ALL_SCOPES]
    if unknown:
        names = ", ".join(repr(v) for v in unknown)
        raise TidingsError(
            422,
            "invalid_scopes",
            f"unknown scopes: {names}; scopes are {', '.join(ALL_SCOPES)}",
            [{"loc": loc, "msg": f"unknown scope {v!r}"} for v in unknown],
        )
    if not given:
        raise TidingsError(
            422,
            "invalid_scopes",
            "a key needs at least one scope",
            [{"loc": loc, "msg": f"give one or more of {', '.join(ALL_SCOPES)}"}],
        )
    return frozenset(Scope(v) for v in given if isinstance(v, str))


def check_tenant_id(value: object, loc: list[str | int]) -> str:
    """A valid tenant id, or 422 ``invalid_tenant``."""
    if isinstance(value, str) and TENANT_ID.fullmatch(value):
        return value
    raise TidingsError(
        422,
        "invalid_tenant",
        "a tenant id is 1-63 characters of lowercase letters, digits and '-', "
        "starting with a letter or digit",
        [{"loc": loc, "msg": f"{value!r} does not match [a-z0-9][a-z0-9-]{{0,62}}"}],
    )


def allows(granted: frozenset[Scope], needed: Scope) -> bool:
    """Scopes do not imply one another, except ``root``, which may do everything."""
    return needed in granted or Scope.ROOT in granted
