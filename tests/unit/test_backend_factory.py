"""Which backend ``TIDINGS_STORE`` names, and the errors for URLs that cannot be used."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tidings.store.backend import open_backend, redact


def _path(url: str | None, data_dir: Path) -> Path:
    backend = open_backend(url, data_dir)
    path: Path = backend.events.path  # type: ignore[attr-defined]
    return path


def test_no_url_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    assert _path(None, tmp_path) == tmp_path / "tidings.db"
    assert _path("", tmp_path) == tmp_path / "tidings.db"
    assert open_backend(None, tmp_path).url == f"sqlite:///{tmp_path / 'tidings.db'}"


def test_sqlite_urls_name_relative_and_absolute_files(tmp_path: Path) -> None:
    assert _path("sqlite:///data/t.db", tmp_path) == Path("data/t.db")
    assert _path(f"sqlite:///{tmp_path}/t.db", tmp_path) == tmp_path / "t.db"
    assert _path("sqlite://t.db", tmp_path) == Path("t.db")


def test_every_member_of_a_backend_is_there(tmp_path: Path) -> None:
    backend = open_backend(None, tmp_path)
    for member in ("events", "deliveries", "sink_cursors", "dead_letters", "leases"):
        assert getattr(backend, member) is not None


def test_a_sqlite_url_without_a_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a file path"):
        open_backend("sqlite:///", tmp_path)


def test_an_unknown_scheme_is_refused_without_its_password(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported store URL") as caught:
        open_backend("mysql://app:hunter2@db/tidings", tmp_path)
    assert "hunter2" not in str(caught.value)


def test_postgresql_without_its_module_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tidings.store.postgres", None)  # as if it were absent
    for url in ("postgresql://postgres@127.0.0.1/test", "postgres://u@h/db"):
        with pytest.raises(ValueError, match="no PostgreSQL store"):
            open_backend(url, tmp_path)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:secret@db:5432/t", "postgresql://app:***@db:5432/t"),
        ("postgresql://app@db/t", "postgresql://app@db/t"),
        ("postgresql://db/t", "postgresql://db/t"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_redact_hides_only_the_password(url: str, shown: str) -> None:
    assert redact(url) == shown
