-- Named queries of the leases (PostgreSQL). A lease is free when it has expired; a release
-- expires it at once but keeps the row, so generations never start again from 1. Each is one
-- statement: the row lock it takes settles two nodes racing for the same lease.

-- name: acquire_lease
-- $1 name, $2 tenant, $3 holder, $4 expires_at_us, $5 now_us
INSERT INTO leases (name, tenant, holder, expires_at_us, generation)
VALUES ($1, $2, $3, $4, 1)
ON CONFLICT (name) DO UPDATE SET
    tenant = excluded.tenant,
    holder = excluded.holder,
    expires_at_us = excluded.expires_at_us,
    generation = CASE WHEN leases.holder = excluded.holder THEN leases.generation
                      ELSE leases.generation + 1 END
WHERE leases.holder = excluded.holder OR leases.expires_at_us <= $5
RETURNING name, tenant, holder, expires_at_us, generation;

-- name: renew_lease
-- $1 name, $2 holder, $3 now_us, $4 expires_at_us
UPDATE leases SET expires_at_us = $4
WHERE name = $1 AND holder = $2 AND expires_at_us > $3
RETURNING name, tenant, holder, expires_at_us, generation;

-- name: release_lease
UPDATE leases SET expires_at_us = 0 WHERE name = $1 AND holder = $2 AND expires_at_us > 0;

-- name: get_lease
SELECT name, tenant, holder, expires_at_us, generation FROM leases WHERE name = $1;
