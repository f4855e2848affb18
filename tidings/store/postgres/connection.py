"""Connecting to PostgreSQL: the pool, and errors translated into what a user can act on."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]

from tidings.errors import TidingsError
from tidings.store.errors import StoreOpenError

LOG_LOCK = 127996005019239  # "tiding": the advisory lock every group commit holds (queries.sql)
MIGRATION_LOCK = LOG_LOCK + 1  # held while the schema is checked and migrated

# Errors that mean "the server is not there right now", as opposed to a refused statement.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)


def describe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"postgresql://{user}{host}{port}{parts.path}"


def start_error(url: str, error: BaseException) -> StoreOpenError:
    """One clear line for a failure to connect or migrate at start-up."""
    if isinstance(error, asyncpg.exceptions.InvalidPasswordError):
        reason = "wrong password or user"
    elif isinstance(error, asyncpg.exceptions.InvalidAuthorizationSpecificationError):
        reason = f"the user is refused: {error}"
    elif isinstance(error, asyncpg.exceptions.InvalidCatalogNameError):
        reason = "the database does not exist (create it first)"
    elif isinstance(error, asyncpg.exceptions.InsufficientPrivilegeError):
        reason = f"no permission to create the tables: {error}"
    elif isinstance(error, asyncpg.exceptions.InvalidSchemaNameError):
        reason = "no schema to create the tables in (check search_path and privileges)"
    elif isinstance(error, UNAVAILABLE):
        reason = f"cannot reach PostgreSQL: {error or type(error).__name__}"
    else:
        reason = f"{type(error).__name__}: {error}"
    return StoreOpenError(describe(url), " ".join(reason.split()))


def unavailable(error: BaseException) -> TidingsError:
    return TidingsError(503, "store_unavailable", f"the store is unavailable: {error}")


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Raise a lost server as 503 ``store_unavailable`` (the caller may retry)."""
    try:
        yield
    except TidingsError:
        raise
    except UNAVAILABLE as error:
        raise unavailable(error) from error


async def create_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 8,
    custom_plans: bool = True,
    init: Callable[[Any], Awaitable[None]] | None = None,
    keep_idle: bool = False,
    reset: bool = True,
) -> Any:
    """A pool whose connections need no codecs of ours: JSON travels as text.

    ``custom_plans``: every query planned for the values at hand, for reads, where a generic
    plan cannot tell a data.<path> value one event in ten holds (walk seq backwards) from a
    rare one (the GIN index). The writer's statements have no such choice and keep the
    plan PostgreSQL caches, which saves planning a group's statement every time.
    ``init`` runs on every new connection; ``keep_idle`` keeps idle connections open rather
    than closing them after five minutes (opened again, they would start cold).
    ``reset=False``: a connection given back is not sent the reset statement (``RESET ALL``,
    ``UNLISTEN *``, advisory locks released...), one round trip on every release; for a pool
    whose users leave no session state behind (an open transaction is still rolled back).
    """
    settings = {"application_name": "tidings"}
    if custom_plans:
        settings["plan_cache_mode"] = "force_custom_plan"
    return await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        command_timeout=60,
        timeout=10,
        server_settings=settings,
        init=init,
        max_inactive_connection_lifetime=0 if keep_idle else 300.0,
        reset=None if reset else _keep_session,
    )


async def _keep_session(conn: Any) -> None:
    """Nothing to reset: the pool's users leave no session state behind."""
