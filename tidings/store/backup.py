"""``tidings backup``: a consistent copy of a running store.

SQLite is copied online through its backup API (a plain ``cp`` of a database in WAL mode can
miss committed pages still in the ``-wal`` file), and the copy is checked with
``PRAGMA quick_check`` before it takes its final name. A PostgreSQL store is PostgreSQL's to
copy: the answer is the ``pg_dump`` command to run.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tidings.store.backend import is_postgres, redact, sqlite_path


class BackupError(Exception):
    """The backup could not be made; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class BackupReport:
    source: Path
    target: Path
    size_bytes: int
    head_seq: int  # the highest event position in the copy
    events: int  # events in the copy
    check: str  # what PRAGMA quick_check said of the copy ("ok" when sound)
    elapsed_s: float

    def describe(self) -> str:
        return (
            f"backed up {self.source} to {self.target}: {self.size_bytes} bytes, "
            f"{self.events} events through seq {self.head_seq}; "
            f"quick_check: {self.check} ({self.elapsed_s:.2f}s)"
        )


@dataclass(frozen=True, slots=True)
class ExternalBackup:
    """A store that another program copies: the command to run, and why."""

    command: str
    note: str


def backup(
    url: str | None, data_dir: Path, target: Path, *, overwrite: bool = False
) -> BackupReport | ExternalBackup:
    """Copy the store ``url`` names to ``target`` (SQLite), or say how (PostgreSQL)."""
    if is_postgres(url):
        assert url is not None
        return pg_dump_plan(url, target)
    from tidings.store.sqlite.backup import backup_sqlite

    return backup_sqlite(sqlite_path(url, data_dir), target, overwrite=overwrite)


def pg_dump_plan(url: str, target: Path) -> ExternalBackup:
    """``pg_dump`` in its custom format (restored with ``pg_restore``, table by table).

    A ``search_path`` in the store URL (passed on by asyncpg, unknown to libpq) names the schema
    Tidings keeps its tables in: it becomes ``--schema``, and the rest of the URL is kept.
    """
    parts = urlsplit(_without_password(url))
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v.split(",")[0].strip() for k, v in query if k == "search_path" and v.strip()]
    rest = urlencode([(k, v) for k, v in query if k != "search_path"])
    shown = urlunsplit(parts._replace(query=rest))
    args = ["pg_dump", "--format=custom", "--no-owner", f"--file={target}"]
    args += [f"--schema={schema}" for schema in schemas[:1]]
    command = shlex.join([*args, f"--dbname={shown}"])
    note = "a PostgreSQL store is copied with pg_dump (consistent while Tidings runs)"
    if shown != url:
        note += "; the password is left out: set PGPASSWORD or use ~/.pgpass"
    return ExternalBackup(command, note)


def _without_password(url: str) -> str:
    """The URL as pg_dump can use it once the password comes from PGPASSWORD."""
    redacted = redact(url)
    return redacted.replace(":***@", "@", 1) if redacted != url else url
