-- Tenants and their API keys. A key is stored by the SHA-256 of its secret; prefix is the
-- start of the secret shown in lists. Scopes are a JSON array of names.
CREATE TABLE tenants (
    id              TEXT    PRIMARY KEY,
    name            TEXT    NOT NULL,
    created_at_us   INTEGER NOT NULL
);
INSERT INTO tenants (id, name, created_at_us)
VALUES ('default', 'default', CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER));
CREATE TABLE api_keys (
    id              TEXT    PRIMARY KEY,
    tenant          TEXT    NOT NULL REFERENCES tenants (id),
    name            TEXT    NOT NULL,
    prefix          TEXT    NOT NULL,
    hash            TEXT    NOT NULL UNIQUE,
    scopes          TEXT    NOT NULL,
    rate_limit      REAL,
    max_streams     INTEGER NOT NULL,
    created_at_us   INTEGER NOT NULL,
    revoked_at_us   INTEGER
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_at_us);
