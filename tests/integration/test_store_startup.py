"""Start-up on a data directory or database that cannot be used: one line, a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.damage import damage_page_holding
from tests.integration.server import ServerProcess, free_port


def serve(data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``tidings serve`` to its end; it must refuse to start, so it ends by itself."""
    command = [sys.executable, "-m", "tidings", "serve", "--port", str(free_port())]
    command += ["--data-dir", str(data_dir)]
    return subprocess.run(
        command,
        env={**os.environ, "TIDINGS_LOG_LEVEL": "warning", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_refused(done: subprocess.CompletedProcess[str], where: Path, reason: str) -> None:
    assert done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith(f"error: cannot open the store {where}: {reason}"), errors


def test_an_empty_database_file_is_refused_not_made_a_new_store(tmp_path: Path) -> None:
    database = tmp_path / "data" / "tidings.db"
    database.parent.mkdir()
    database.write_bytes(b"")
    done = serve(database.parent)
    assert_refused(done, database, "the database file is empty (0 bytes)")
    assert database.stat().st_size == 0  # left as it was found


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "data" / "tidings.db"
    database.parent.mkdir()
    database.write_bytes(b"this is not a database, it only has its name\n" * 100)
    assert_refused(serve(database.parent), database, "the file is not a SQLite database")


def test_a_data_directory_that_cannot_be_created_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file where a directory should be")
    data_dir = tmp_path / "file" / "data"
    assert_refused(serve(data_dir), data_dir, "the data directory cannot be created")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only directories")
def test_a_read_only_data_directory_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o555)
    try:
        assert_refused(serve(data_dir), data_dir, "the data directory is not writable")
    finally:
        data_dir.chmod(0o755)


def test_a_damaged_page_is_found_at_start_by_quick_check(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir).start()
    events = [
        {
            "type": "damage.test",
            "source": "t",
            "data": {"marker": f"MARK-{i:04d}", "pad": "x" * 900},
        }
        for i in range(200)
    ]
    assert httpx.post(server.url + "/v1/events", json=events, timeout=30).status_code == 201
    assert server.stop() == 0
    damage_page_holding(data_dir / "tidings.db", b"MARK-0020")
    done = serve(data_dir)
    assert_refused(done, data_dir / "tidings.db", "PRAGMA quick_check found damage")
