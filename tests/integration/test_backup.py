"""``tidings backup``: a consistent, checked copy of a SQLite store, also while it is written;
the pg_dump line for PostgreSQL; clear errors otherwise."""

from __future__ import annotations

import asyncio
import re
import shlex
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.integration.server import ServerProcess
from tidings.envelope import Limits, PublishContext, candidates_from_json
from tidings.store import open_backend
from tidings.store.backup import BackupError, BackupReport, ExternalBackup, backup


def tidings(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidings", *args], capture_output=True, text=True, timeout=60
    )


def seed(data_dir: Path, count: int) -> None:
    async def run() -> None:
        backend = open_backend(None, data_dir)
        await backend.open()
        bodies = [{"type": "kept.event", "data": {"n": n}} for n in range(count)]
        candidates, _ = candidates_from_json(bodies, PublishContext(tenant="default"), Limits())
        await backend.events.append(candidates)
        await backend.close()

    asyncio.run(run())


def test_a_backup_is_one_checked_file_with_every_event(tmp_path: Path) -> None:
    seed(tmp_path / "data", 25)
    target = tmp_path / "copy.db"
    report = backup(None, tmp_path / "data", target)
    assert isinstance(report, BackupReport)
    assert (report.events, report.head_seq, report.check) == (25, 25, "ok")
    assert target.is_file() and not Path(f"{target}-wal").exists()
    assert not (tmp_path / "copy.db.partial").exists()
    with sqlite3.connect(target) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 25


def test_a_backup_opens_as_a_store(tmp_path: Path) -> None:
    seed(tmp_path / "data", 3)
    backup(None, tmp_path / "data", tmp_path / "restored" / "tidings.db")

    async def read() -> list[int]:
        backend = open_backend(None, tmp_path / "restored")
        await backend.open()
        try:
            return [e.seq for e in await backend.events.read_log(0, 100, 100)]
        finally:
            await backend.close()

    assert asyncio.run(read()) == [1, 2, 3]


def test_an_existing_target_is_kept_unless_overwrite_is_given(tmp_path: Path) -> None:
    seed(tmp_path / "data", 1)
    target = tmp_path / "copy.db"
    target.write_bytes(b"precious")
    with pytest.raises(BackupError, match="exists; pass --overwrite"):
        backup(None, tmp_path / "data", target)
    assert target.read_bytes() == b"precious"
    assert isinstance(backup(None, tmp_path / "data", target, overwrite=True), BackupReport)


def test_a_missing_store_is_an_error_and_no_empty_store_is_made(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="no SQLite store at"):
        backup(None, tmp_path / "nothing", tmp_path / "copy.db")
    assert not (tmp_path / "nothing" / "tidings.db").exists()
    assert not (tmp_path / "copy.db").exists()


def test_a_file_that_is_not_sqlite_fails_and_leaves_no_backup(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tidings.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupError):
        backup(None, tmp_path / "data", tmp_path / "copy.db")
    assert not (tmp_path / "copy.db").exists()
    assert not (tmp_path / "copy.db.partial").exists()


def test_postgresql_gets_the_pg_dump_line_without_the_password(tmp_path: Path) -> None:
    plan = backup("postgresql://app:s3cret@db:5432/tidings", tmp_path, Path("/b/t.dump"))
    assert isinstance(plan, ExternalBackup)
    assert plan.command == (
        "pg_dump --format=custom --no-owner --file=/b/t.dump "
        "--dbname=postgresql://app@db:5432/tidings"
    )
    assert "s3cret" not in plan.command and "PGPASSWORD" in plan.note


def test_a_search_path_becomes_the_schema_to_dump(tmp_path: Path) -> None:
    plan = backup(
        "postgresql://u@h/db?search_path=tidings,public&sslmode=require", tmp_path, Path("t")
    )
    assert isinstance(plan, ExternalBackup)
    assert plan.command == (
        "pg_dump --format=custom --no-owner --file=t --schema=tidings "
        "'--dbname=postgresql://u@h/db?sslmode=require'"
    )


def test_the_command_copies_a_running_server_while_it_is_written(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server(data_dir=tmp_path / "live")
    if server.store is not None and server.store.database is not None:
        pg_dump_runs(server, tmp_path)
        return
    batch = [{"type": "busy.event", "data": {"n": n}} for n in range(200)]
    with httpx.Client(base_url=server.url) as http:
        for _ in range(5):
            assert http.post("/v1/events", json=batch).status_code == 201
        target = tmp_path / "live.db"
        # Publishes keep committing while the copy is taken; the copy is one snapshot.
        writer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import httpx,sys\n"
                "b=[{'type':'busy.more','data':{}}]*50\n"
                "for _ in range(40): httpx.post(sys.argv[1]+'/v1/events', json=b)",
                server.url,
            ]
        )
        try:
            result = tidings("backup", str(target), "--data-dir", str(tmp_path / "live"))
        finally:
            writer.wait(60)
        assert result.returncode == 0, result.stderr
        assert "quick_check: ok" in result.stdout
        with sqlite3.connect(target) as conn:
            count, head = conn.execute("SELECT COUNT(*), MAX(seq) FROM events").fetchone()
        assert count == head >= 1000  # a prefix of the log: no holes, nothing torn
    again = tidings("backup", str(target), "--data-dir", str(tmp_path / "live"))
    assert again.returncode == 1 and "--overwrite" in again.stderr


def pg_dump_runs(server: ServerProcess, tmp_path: Path) -> None:
    """On PostgreSQL the printed line is a command that works: run it, list the dump."""
    assert httpx.post(server.url + "/v1/events", json={"type": "dumped.event"}).status_code == 201
    target = tmp_path / "live.dump"
    result = tidings("backup", str(target), *server.store_options())
    assert result.returncode == 0, result.stderr
    dumped = subprocess.run(shlex.split(result.stdout), capture_output=True, text=True, timeout=120)
    assert dumped.returncode == 0, dumped.stderr
    listing = subprocess.run(
        ["pg_restore", "--list", str(target)], capture_output=True, text=True, timeout=60
    )
    assert re.search(r"TABLE DATA \S+ events ", listing.stdout), listing.stdout


def test_the_command_prints_the_pg_dump_line_for_postgresql(tmp_path: Path) -> None:
    result = tidings("backup", str(tmp_path / "t.dump"), "--store", "postgresql://u@h/db")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pg_dump --format=custom")
    assert "pg_dump" in result.stderr


def test_a_damaged_store_gives_no_backup_and_says_what_quick_check_found(
    tmp_path: Path,
) -> None:
    seed(tmp_path / "data", 1000)
    path = tmp_path / "data" / "tidings.db"
    with sqlite3.connect(path) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'").fetchone()
    with path.open("r+b") as file:  # scribble over the events table's root page
        file.seek((root[0] - 1) * page_size + 8)
        file.write(b"\xff" * 64)
    with pytest.raises(BackupError, match=r"quick_check|malformed"):
        backup(None, tmp_path / "data", tmp_path / "copy.db")
    assert not (tmp_path / "copy.db").exists()
    assert not (tmp_path / "copy.db.partial").exists()
