"""The peer: the publish endpoint a Python user would write first, run beside Tidings.

FastAPI + aiosqlite with one shared connection, a Pydantic body model, one ``commit()`` per
request, ``journal_mode=WAL`` and ``synchronous=FULL`` (acknowledged means on disk, as in
Tidings), and a table shaped like Tidings' events table with two secondary indexes.

Because every request shares the one connection and Python's ``sqlite3`` opens transactions
implicitly, inserts of concurrent requests can land in the same transaction and one commit
can make several of them durable. That accidental grouping is part of what this naive code
does, and it helps the peer, so it is kept.

Run it alone (``bench/run_publish.py`` does)::

    .venv/bin/python bench/peer_aiosqlite.py --port 18432 --data-dir /tmp/peer
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,
    type        TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    subject     TEXT,
    time        TEXT    NOT NULL,
    received_at TEXT    NOT NULL,
    data        TEXT    NOT NULL,
    metadata    TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_type ON events (type, seq);
CREATE INDEX IF NOT EXISTS events_by_received ON events (received_at);
"""

COLUMNS = "id, type, source, subject, time, received_at, data, metadata"
INSERT_ONE = f"INSERT INTO events ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


class EventIn(BaseModel):
    type: str = Field(
        min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_:\-]+(\.[A-Za-z0-9_:\-]+)*$"
    )
    source: str = "api"
    subject: str | None = None
    time: datetime | None = None
    data: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)


def _row(event: EventIn, received_at: str) -> tuple[Any, ...]:
    when = event.time.isoformat() if event.time else received_at
    return (
        str(uuid.uuid4()),
        event.type,
        event.source,
        event.subject,
        when,
        received_at,
        json.dumps(event.data),
        json.dumps(event.metadata),
    )


def create_app(db_path: Path) -> FastAPI:
    """The peer app on the SQLite file ``db_path``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = await aiosqlite.connect(db_path)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=FULL")
        await db.executescript(SCHEMA)
        await db.commit()
        app.state.db = db
        try:
            yield
        finally:
            await db.close()

    app = FastAPI(title="peer: FastAPI + aiosqlite", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/stats")
    async def stats(request: Request) -> dict[str, dict[str, int]]:
        db: aiosqlite.Connection = request.app.state.db
        rows = await db.execute_fetchall("SELECT count(*) FROM events")
        return {"events": {"total": next(iter(rows))[0]}}

    @app.post("/v1/events", status_code=201)
    async def publish(request: Request, body: EventIn | list[EventIn]) -> Any:
        db: aiosqlite.Connection = request.app.state.db
        received_at = datetime.now(UTC).isoformat()
        if isinstance(body, EventIn):
            row = _row(body, received_at)
            cursor = await db.execute(INSERT_ONE, row)
            await db.commit()
            return {"id": row[0], "seq": cursor.lastrowid}
        if not body:
            return JSONResponse({"events": []}, status_code=201)
        rows = [_row(event, received_at) for event in body]
        # One multi-row INSERT ... RETURNING: one trip to the aiosqlite thread per batch.
        values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(rows))
        params = [value for row in rows for value in row]
        returned = await db.execute_fetchall(
            f"INSERT INTO events ({COLUMNS}) VALUES {values} RETURNING id, seq", params
        )
        await db.commit()
        seqs = dict(returned)  # type: ignore[arg-type]
        return {"events": [{"id": row[0], "seq": seqs[row[0]]} for row in rows]}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18432)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(args.data_dir / "peer.sqlite3")
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
