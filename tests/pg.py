"""A PostgreSQL database of its own for each test run, and a schema of its own for each test.

The server is the one on 127.0.0.1:5432 (user ``postgres``, trust auth) unless
``TIDINGS_TEST_POSTGRES`` names another (a URL without a database).
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import asyncpg
import pytest

SERVER = os.environ.get("TIDINGS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


def url(database: str, schema: str | None = None) -> str:
    """A store URL; ``schema``: every table goes there (asyncpg passes search_path on)."""
    return f"{SERVER}/{database}" + (f"?search_path={schema}" if schema else "")


def _run(work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``work`` to the end on a thread of its own (a fixture may run inside a loop)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(work())
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


async def _admin(*statements: str) -> None:
    conn = await asyncpg.connect(url("postgres"))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def create_database(prefix: str = "tidings_test") -> str:
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    _run(lambda: _admin(f'CREATE DATABASE "{name}"'))
    return name


def drop_database(name: str) -> None:
    _run(lambda: _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def create_schema(database: str) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"

    async def run() -> None:
        conn = await asyncpg.connect(url(database))
        try:
            await conn.execute(f"CREATE SCHEMA {name}")
        finally:
            await conn.close()

    _run(run)
    return name


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The name of a database created for this test run and dropped after it."""
    name = create_database()
    yield name
    drop_database(name)


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """A store URL over a fresh, empty schema of the run's database."""
    return url(pg_database, create_schema(pg_database))
