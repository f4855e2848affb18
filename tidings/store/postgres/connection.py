"""Connecting to PostgreSQL: the pool, and errors translated into what a user can act on."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]

from tidings.errors import TidingsError

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


class StoreStartError(ValueError):
    """The store cannot start with this URL: the message is one line naming the problem."""


def describe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"postgresql://{user}{host}{port}{parts.path}"


def start_error(url: str, error: BaseException) -> StoreStartError:
    """One clear line for a failure to connect or migrate at start-up."""
    where = describe(url)
    if isinstance(error, asyncpg.exceptions.InvalidPasswordError):
        text = f"TIDINGS_STORE: wrong password or user for {where}"
    elif isinstance(error, asyncpg.exceptions.InvalidAuthorizationSpecificationError):
        text = f"TIDINGS_STORE: {where} refused the user: {error}"
    elif isinstance(error, asyncpg.exceptions.InvalidCatalogNameError):
        text = f"TIDINGS_STORE: the database of {where} does not exist (create it first)"
    elif isinstance(error, asyncpg.exceptions.InsufficientPrivilegeError):
        text = f"TIDINGS_STORE: no permission to create the tables in {where}: {error}"
    elif isinstance(error, asyncpg.exceptions.InvalidSchemaNameError):
        text = f"TIDINGS_STORE: no schema to create the tables in at {where} (search_path?)"
    elif isinstance(error, UNAVAILABLE):
        text = f"TIDINGS_STORE: cannot reach PostgreSQL at {where}: {error or type(error).__name__}"
    else:
        text = f"TIDINGS_STORE: {where}: {type(error).__name__}: {error}"
    return StoreStartError(" ".join(text.split()))


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


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 8) -> Any:
    """A pool whose connections need no codecs of ours: JSON travels as text."""
    return await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        command_timeout=60,
        timeout=10,
        server_settings={"application_name": "tidings"},
    )
