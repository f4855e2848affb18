"""The store: every kind of state Tidings keeps, as narrow protocols with one module per
implementation, opened together as a ``Backend`` from ``TIDINGS_STORE``."""

from __future__ import annotations

from tidings.store.auth import ApiKey, AuthStore, Tenant
from tidings.store.backend import Backend, open_backend
from tidings.store.base import (
    BucketCount,
    CommitListener,
    CountQuery,
    GroupBy,
    GroupListener,
    Query,
    Store,
    StoreStats,
)
from tidings.store.errors import StoreOpenError

__all__ = [
    "ApiKey",
    "AuthStore",
    "Backend",
    "BucketCount",
    "CommitListener",
    "CountQuery",
    "GroupBy",
    "GroupListener",
    "Query",
    "Store",
    "StoreOpenError",
    "StoreStats",
    "Tenant",
    "open_backend",
]
