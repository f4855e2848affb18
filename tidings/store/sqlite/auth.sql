-- name: insert_tenant
INSERT INTO tenants (id, name, created_at_us) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING;

-- name: get_tenant
SELECT id, name, created_at_us FROM tenants WHERE id = ?;

-- name: list_tenants
SELECT id, name, created_at_us FROM tenants ORDER BY created_at_us, id;

-- name: insert_key
INSERT INTO api_keys
    (id, tenant, name, prefix, hash, scopes, rate_limit, max_streams, created_at_us,
     revoked_at_us)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: get_key
SELECT id, tenant, name, prefix, hash, scopes, rate_limit, max_streams, created_at_us,
       revoked_at_us
FROM api_keys WHERE id = ?;

-- name: key_by_hash
SELECT id, tenant, name, prefix, hash, scopes, rate_limit, max_streams, created_at_us,
       revoked_at_us
FROM api_keys WHERE hash = ?;

-- name: list_keys
SELECT id, tenant, name, prefix, hash, scopes, rate_limit, max_streams, created_at_us,
       revoked_at_us
FROM api_keys ORDER BY created_at_us, id;

-- name: list_tenant_keys
SELECT id, tenant, name, prefix, hash, scopes, rate_limit, max_streams, created_at_us,
       revoked_at_us
FROM api_keys WHERE tenant = ? ORDER BY created_at_us, id;

-- name: revoke_key
UPDATE api_keys SET revoked_at_us = ? WHERE id = ? AND revoked_at_us IS NULL;

-- name: count_active_keys
SELECT count(*) FROM api_keys WHERE revoked_at_us IS NULL;
