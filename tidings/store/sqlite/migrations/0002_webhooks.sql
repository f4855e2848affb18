-- Outbound webhook endpoints. `cursor`: every event with seq <= cursor has had its delivery
-- created (or did not match), so the publish path never writes per-endpoint rows.
CREATE TABLE webhooks (
    id               TEXT    PRIMARY KEY,
    tenant           TEXT    NOT NULL,
    url              TEXT    NOT NULL,
    events           TEXT    NOT NULL,  -- JSON list of type patterns
    filter           TEXT    NOT NULL,  -- JSON object: the other filters
    secrets          TEXT    NOT NULL,  -- JSON list, newest first: {"secret", "expires_at_us"}
    active           INTEGER NOT NULL,
    description      TEXT,
    rate_limit       REAL,
    headers          TEXT    NOT NULL,  -- JSON object
    created_at_us    INTEGER NOT NULL,
    updated_at_us    INTEGER NOT NULL,
    disabled_reason  TEXT,
    cursor           INTEGER NOT NULL,
    failing_since_us INTEGER            -- start of the current run of failures
);
CREATE INDEX webhooks_by_tenant ON webhooks (tenant, created_at_us);

-- One row per (event, endpoint) to deliver, with its state; attempts are logged separately.
CREATE TABLE deliveries (
    id                 TEXT    PRIMARY KEY,
    tenant             TEXT    NOT NULL,
    webhook_id         TEXT    NOT NULL,
    event_seq          INTEGER NOT NULL,
    event_id           TEXT    NOT NULL,
    message_id         TEXT    NOT NULL,  -- the webhook-id header: same for every attempt/replay
    status             TEXT    NOT NULL,  -- pending | succeeded | failed | cancelled
    attempts           INTEGER NOT NULL,
    max_attempts       INTEGER NOT NULL,
    next_attempt_at_us INTEGER,
    lease_until_us     INTEGER,           -- claimed by a worker until then
    created_at_us      INTEGER NOT NULL,
    updated_at_us      INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at_us) WHERE status = 'pending';
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_by_webhook_status ON deliveries (webhook_id, status, id);
CREATE INDEX deliveries_pending_seq ON deliveries (event_seq) WHERE status = 'pending';
CREATE INDEX deliveries_finished ON deliveries (updated_at_us) WHERE status != 'pending';

CREATE TABLE delivery_attempts (
    delivery_id   TEXT    NOT NULL,
    n             INTEGER NOT NULL,
    at_us         INTEGER NOT NULL,
    status_code   INTEGER,
    latency_ms    REAL,
    error         TEXT,
    response_body TEXT,
    PRIMARY KEY (delivery_id, n)
) WITHOUT ROWID;

-- Durable positions of other sinks that follow the log (the MQTT bridge).
CREATE TABLE sink_cursors (
    sink          TEXT    PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    position      INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL
);
