-- Input that could not become events: the raw bytes and why, kept until redriven or deleted.
-- seq orders and pages the list; headers keeps what a webhook mapping reads (for a redrive).
CREATE TABLE dead_letters (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant          TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    reason_code     TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    raw             BLOB    NOT NULL,
    topic           TEXT,
    headers         TEXT    NOT NULL DEFAULT '{}',
    received_at_us  INTEGER NOT NULL
);
CREATE UNIQUE INDEX dead_letters_by_id ON dead_letters (tenant, id);
CREATE INDEX dead_letters_by_source ON dead_letters (tenant, source, seq);
CREATE INDEX dead_letters_by_topic ON dead_letters (tenant, topic, seq) WHERE topic IS NOT NULL;
CREATE INDEX dead_letters_by_received ON dead_letters (tenant, received_at_us);
