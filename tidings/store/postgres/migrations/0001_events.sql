-- The event log. Positions come from a sequence drawn under a transaction-scoped advisory
-- lock (see writer.py), so they become visible in commit order and are never reused.
CREATE SEQUENCE events_seq AS bigint;

CREATE TABLE events (
    seq             bigint  PRIMARY KEY,
    tenant          text    NOT NULL,
    id              text    NOT NULL,
    type            text    NOT NULL,
    source          text    NOT NULL,
    subject         text,
    time_us         bigint  NOT NULL,
    received_at_us  bigint  NOT NULL,
    trace_id        text    NOT NULL,
    idempotency_key text,
    dedupe_key      text,
    data_text       text    NOT NULL,  -- the JSON exactly as published (served as is)
    metadata_text   text    NOT NULL,
    data            jsonb,             -- the same documents, for data.<path> filters
    metadata        jsonb
);
CREATE UNIQUE INDEX events_dedupe ON events (tenant, dedupe_key) WHERE dedupe_key IS NOT NULL;
CREATE INDEX events_by_id ON events (tenant, id);
CREATE INDEX events_by_tenant ON events (tenant, seq);
CREATE INDEX events_by_type ON events (tenant, type, seq);
CREATE INDEX events_by_source ON events (tenant, source, seq);
CREATE INDEX events_by_subject ON events (tenant, subject, seq) WHERE subject IS NOT NULL;
CREATE INDEX events_by_trace ON events (tenant, trace_id, seq);  -- the trace_id filter
-- received_at never decreases with seq: a time bound is found here, then read as a seq range
CREATE INDEX events_by_received ON events (tenant, received_at_us, seq);
CREATE INDEX events_data ON events USING gin (data jsonb_path_ops);
CREATE INDEX events_metadata ON events USING gin (metadata jsonb_path_ops);

-- The writer's state, read and written under the advisory lock: the last received_at stamp
-- survives a purge of every event.
CREATE TABLE log_state (
    id              integer PRIMARY KEY CHECK (id = 1),
    received_at_us  bigint  NOT NULL
);
INSERT INTO log_state (id, received_at_us) VALUES (1, 0);

-- How far retention has deleted, per tenant: a resume point at or below it lost history.
CREATE TABLE purges (
    tenant           text    PRIMARY KEY,
    purged_through   bigint  NOT NULL,
    purged_at_us     bigint  NOT NULL
);
