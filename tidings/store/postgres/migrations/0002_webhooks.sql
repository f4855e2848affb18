-- Outbound webhook endpoints. `cursor`: every event with seq <= cursor has had its delivery
-- created (or did not match), so the publish path never writes per-endpoint rows.
CREATE TABLE webhooks (
    id               text    PRIMARY KEY,
    tenant           text    NOT NULL,
    url              text    NOT NULL,
    events           jsonb   NOT NULL,  -- list of type patterns
    filter           jsonb   NOT NULL,  -- the other filters
    secrets          jsonb   NOT NULL,  -- newest first: {"secret", "expires_at_us"}
    active           boolean NOT NULL,
    description      text,
    rate_limit       double precision,
    headers          jsonb   NOT NULL,
    created_at_us    bigint  NOT NULL,
    updated_at_us    bigint  NOT NULL,
    disabled_reason  text,
    cursor           bigint  NOT NULL,
    failing_since_us bigint             -- start of the current run of failures
);
CREATE INDEX webhooks_by_tenant ON webhooks (tenant, created_at_us);

-- One row per (event, endpoint) to deliver, with its state; attempts are logged separately.
CREATE TABLE deliveries (
    id                 text    PRIMARY KEY,
    tenant             text    NOT NULL,
    webhook_id         text    NOT NULL,
    event_seq          bigint  NOT NULL,
    event_id           text    NOT NULL,
    message_id         text    NOT NULL,  -- the webhook-id header: same for every attempt
    status             text    NOT NULL,  -- pending | succeeded | failed | cancelled
    attempts           integer NOT NULL,
    max_attempts       integer NOT NULL,
    next_attempt_at_us bigint,
    lease_until_us     bigint,            -- claimed by a worker until then
    created_at_us      bigint  NOT NULL,
    updated_at_us      bigint  NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at_us) WHERE status = 'pending';
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);
CREATE INDEX deliveries_by_webhook_status ON deliveries (webhook_id, status, id);
CREATE INDEX deliveries_pending_seq ON deliveries (event_seq) WHERE status = 'pending';
CREATE INDEX deliveries_finished ON deliveries (updated_at_us) WHERE status <> 'pending';

CREATE TABLE delivery_attempts (
    delivery_id   text    NOT NULL,
    n             integer NOT NULL,
    at_us         bigint  NOT NULL,
    status_code   integer,
    latency_ms    double precision,
    error         text,
    response_body text,
    PRIMARY KEY (delivery_id, n)
);

-- Durable positions of other sinks that follow the log (the MQTT bridge).
CREATE TABLE sink_cursors (
    sink          text    PRIMARY KEY,
    tenant        text    NOT NULL,
    position      bigint  NOT NULL,
    updated_at_us bigint  NOT NULL
);
