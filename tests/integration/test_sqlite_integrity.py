"""``quick_check`` and ``check_location`` on real files: sound, damaged, and out of time."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.integration.damage import damage_page_holding
from tidings.store.errors import StoreOpenError
from tidings.store.sqlite.integrity import check_location, quick_check


def make_database(path: Path, rows: int = 300) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany(
        "INSERT INTO t (body) VALUES (?)", [(f"ROW-{i:05d}" + "x" * 900,) for i in range(rows)]
    )
    conn.commit()
    conn.close()


def test_a_sound_database_passes(tmp_path: Path) -> None:
    make_database(tmp_path / "a.db")
    with sqlite3.connect(tmp_path / "a.db") as conn:
        result = quick_check(conn, timeout_s=10)
    assert result.ok and result.describe() == "ok"


def test_a_damaged_page_is_reported_in_sqlites_words(tmp_path: Path) -> None:
    make_database(tmp_path / "a.db")
    damage_page_holding(tmp_path / "a.db", b"ROW-00100")
    with sqlite3.connect(tmp_path / "a.db") as conn:
        result = quick_check(conn, timeout_s=10)
    assert result.finished and not result.ok
    assert result.problems and "malformed" in result.describe()


def test_the_check_stops_when_its_time_is_up(tmp_path: Path) -> None:
    make_database(tmp_path / "a.db", rows=20_000)
    with sqlite3.connect(tmp_path / "a.db") as conn:
        result = quick_check(conn, timeout_s=0.0)
        assert not result.finished and not result.ok
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (20_000,)  # still usable


def test_check_location_creates_the_directory_and_accepts_a_new_file(tmp_path: Path) -> None:
    check_location(tmp_path / "new" / "dir" / "tidings.db")
    assert (tmp_path / "new" / "dir").is_dir()


def test_check_location_refuses_a_directory_in_place_of_the_file(tmp_path: Path) -> None:
    (tmp_path / "tidings.db").mkdir()
    with pytest.raises(StoreOpenError, match="is a directory"):
        check_location(tmp_path / "tidings.db")
