-- Tenants and their API keys. A key is stored by the SHA-256 of its secret; prefix is the
-- start of the secret shown in lists. Scopes are a JSON array of names.
CREATE TABLE tenants (
    id              text    PRIMARY KEY,
    name            text    NOT NULL,
    created_at_us   bigint  NOT NULL
);
INSERT INTO tenants (id, name, created_at_us)
VALUES ('default', 'default', (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
CREATE TABLE api_keys (
    id              text    PRIMARY KEY,
    tenant          text    NOT NULL REFERENCES tenants (id),
    name            text    NOT NULL,
    prefix          text    NOT NULL,
    hash            text    NOT NULL UNIQUE,
    scopes          text    NOT NULL,
    rate_limit      double precision,
    max_streams     integer NOT NULL,
    created_at_us   bigint  NOT NULL,
    revoked_at_us   bigint
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_at_us);
