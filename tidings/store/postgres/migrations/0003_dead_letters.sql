-- Input that could not become events: the raw bytes and why, kept until redriven or deleted.
-- seq orders and pages the list; headers keeps what a webhook mapping reads (for a redrive).
CREATE TABLE dead_letters (
    seq             bigserial PRIMARY KEY,
    tenant          text    NOT NULL,
    id              text    NOT NULL,
    source          text    NOT NULL,
    reason_code     text    NOT NULL,
    reason          text    NOT NULL,
    raw             bytea   NOT NULL,
    topic           text,
    headers         jsonb   NOT NULL DEFAULT '{}',
    received_at_us  bigint  NOT NULL
);
CREATE UNIQUE INDEX dead_letters_by_id ON dead_letters (tenant, id);
CREATE INDEX dead_letters_by_source ON dead_letters (tenant, source, seq);
CREATE INDEX dead_letters_by_topic ON dead_letters (tenant, topic, seq) WHERE topic IS NOT NULL;
CREATE INDEX dead_letters_by_received ON dead_letters (tenant, received_at_us);
