-- The event log. seq is AUTOINCREMENT so that a purge never lets a position be reused.
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant          TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    subject         TEXT,
    time_us         INTEGER NOT NULL,
    received_at_us  INTEGER NOT NULL,
    trace_id        TEXT    NOT NULL,
    idempotency_key TEXT,
    dedupe_key      TEXT,
    data            TEXT    NOT NULL,
    metadata        TEXT    NOT NULL
);
CREATE UNIQUE INDEX events_dedupe ON events (tenant, dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX events_by_id ON events (tenant, id);
CREATE INDEX events_by_tenant ON events (tenant, seq);
CREATE INDEX events_by_type ON events (tenant, type, seq);
CREATE INDEX events_by_source ON events (tenant, source, seq);
CREATE INDEX events_by_subject ON events (tenant, subject, seq) WHERE subject IS NOT NULL;
CREATE INDEX events_by_received ON events (tenant, received_at_us);

-- How far retention has deleted, per tenant: a resume point at or below it lost history.
CREATE TABLE purges (
    tenant           TEXT    PRIMARY KEY,
    purged_through   INTEGER NOT NULL,
    purged_at_us     INTEGER NOT NULL
);
