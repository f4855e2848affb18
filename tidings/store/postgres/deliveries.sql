-- Named queries of the delivery state (PostgreSQL).

-- name: insert_endpoint
INSERT INTO webhooks (id, tenant, url, events, filter, secrets, active, description, rate_limit,
                      headers, created_at_us, updated_at_us, disabled_reason, cursor,
                      failing_since_us)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15);

-- name: update_endpoint
UPDATE webhooks SET url = $1, events = $2, filter = $3, secrets = $4, active = $5, description = $6,
    rate_limit = $7, headers = $8, updated_at_us = $9, disabled_reason = $10, failing_since_us = $11
WHERE tenant = $12 AND id = $13;

-- name: delete_endpoint
DELETE FROM webhooks WHERE tenant = $1 AND id = $2;

-- name: select_endpoint
SELECT id, tenant, url, events, filter, secrets, active, description, rate_limit, headers,
       created_at_us, updated_at_us, disabled_reason, cursor, failing_since_us
FROM webhooks WHERE tenant = $1 AND id = $2;

-- name: select_endpoints
SELECT id, tenant, url, events, filter, secrets, active, description, rate_limit, headers,
       created_at_us, updated_at_us, disabled_reason, cursor, failing_since_us
FROM webhooks WHERE ($1::text IS NULL OR tenant = $1) ORDER BY created_at_us, id;

-- name: move_cursor
UPDATE webhooks SET cursor = GREATEST(cursor, $1) WHERE id = $2;

-- name: insert_delivery
INSERT INTO deliveries (id, tenant, webhook_id, event_seq, event_id, message_id, status,
                        attempts, max_attempts, next_attempt_at_us, lease_until_us,
                        created_at_us, updated_at_us)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13);

-- name: claim_due
UPDATE deliveries SET lease_until_us = $3
WHERE id IN (
    SELECT id FROM deliveries
    WHERE status = 'pending' AND next_attempt_at_us <= $1
      AND (lease_until_us IS NULL OR lease_until_us < $1)
    ORDER BY next_attempt_at_us LIMIT $2
    FOR UPDATE SKIP LOCKED
)
RETURNING id, tenant, webhook_id, event_seq, event_id, message_id, status, attempts,
          max_attempts, next_attempt_at_us, created_at_us, updated_at_us;

-- name: insert_attempt
INSERT INTO delivery_attempts (delivery_id, n, at_us, status_code, latency_ms, error,
                                          response_body)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (delivery_id, n) DO UPDATE SET at_us = excluded.at_us,
    status_code = excluded.status_code, latency_ms = excluded.latency_ms,
    error = excluded.error, response_body = excluded.response_body;

-- name: finish_attempt
UPDATE deliveries SET status = $1, attempts = GREATEST(attempts, $2), next_attempt_at_us = $3,
    lease_until_us = NULL, updated_at_us = $4
WHERE id = $5 AND status = 'pending';

-- name: endpoint_succeeded
UPDATE webhooks SET failing_since_us = NULL WHERE id = $1;

-- name: endpoint_failed
UPDATE webhooks SET failing_since_us = COALESCE(failing_since_us, $1) WHERE id = $2;

-- name: release_leases
UPDATE deliveries SET lease_until_us = NULL WHERE status = 'pending' AND lease_until_us IS NOT NULL;

-- name: cancel_pending
UPDATE deliveries SET status = 'cancelled', next_attempt_at_us = NULL, lease_until_us = NULL,
    updated_at_us = $1
WHERE tenant = $2 AND webhook_id = $3 AND status = 'pending';

-- name: cancel_delivery
UPDATE deliveries SET status = 'cancelled', next_attempt_at_us = NULL, lease_until_us = NULL,
    updated_at_us = $1
WHERE id = $2 AND status = 'pending';

-- name: select_delivery
SELECT id, tenant, webhook_id, event_seq, event_id, message_id, status, attempts, max_attempts,
       next_attempt_at_us, created_at_us, updated_at_us
FROM deliveries WHERE tenant = $1 AND id = $2;

-- name: select_deliveries
SELECT id, tenant, webhook_id, event_seq, event_id, message_id, status, attempts, max_attempts,
       next_attempt_at_us, created_at_us, updated_at_us
FROM deliveries
WHERE tenant = $1 AND webhook_id = $2 AND ($3::text IS NULL OR status = $3) AND ($4::text IS NULL OR id < $4)
ORDER BY id DESC LIMIT $5;

-- name: select_attempts
SELECT n, at_us, status_code, latency_ms, error, response_body
FROM delivery_attempts WHERE delivery_id = $1 ORDER BY n;

-- name: retry_delivery
UPDATE deliveries SET status = 'pending', max_attempts = attempts + 1, next_attempt_at_us = $1,
    lease_until_us = NULL, updated_at_us = $2
WHERE tenant = $3 AND id = $4 AND status <> 'pending';

-- name: floor_pending
SELECT MIN(event_seq) FROM deliveries WHERE status = 'pending';

-- name: floor_cursors
SELECT MIN(cursor) + 1 FROM webhooks WHERE active;

-- name: purge_finished_chunk
DELETE FROM deliveries WHERE id IN (
    SELECT id FROM deliveries WHERE status <> 'pending' AND updated_at_us < $1 LIMIT $2
) RETURNING id;

-- name: delete_attempts
DELETE FROM delivery_attempts WHERE delivery_id = $1;

-- name: count_by_status
SELECT status, COUNT(*) FROM deliveries WHERE tenant = $1 GROUP BY status;

-- name: oldest_pending
SELECT MIN(created_at_us) FROM deliveries WHERE tenant = $1 AND status = 'pending';

-- name: attempts_by_endpoint_since
SELECT d.webhook_id, SUM(CASE WHEN a.status_code BETWEEN 200 AND 299 THEN 1 ELSE 0 END), COUNT(*)
FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
WHERE d.tenant = $1 AND a.at_us >= $2 GROUP BY d.webhook_id;

-- name: attempts_since
SELECT CASE WHEN a.status_code BETWEEN 200 AND 299 THEN 'succeeded' ELSE 'failed' END, COUNT(*)
FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
WHERE d.tenant = $1 AND a.at_us >= $2 GROUP BY 1;

-- name: relaxed_commit
-- The transaction's commit does not wait for the disk (attempt results: see _write_results).
SET LOCAL synchronous_commit TO OFF;

-- name: record_batch
-- A batch of attempt results in one statement, committed on its own: the attempt log, the
-- deliveries they settle, and each endpoint's run of failures ($11: 'clear' ends it, 'set'
-- starts it at $12, 'start' starts it unless one is running). Ids are distinct in a batch.
WITH logged AS (
    INSERT INTO delivery_attempts (delivery_id, n, at_us, status_code, latency_ms, error,
                                   response_body)
    SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::integer[],
                         $5::double precision[], $6::text[], $7::text[])
    ON CONFLICT (delivery_id, n) DO UPDATE SET at_us = excluded.at_us,
        status_code = excluded.status_code, latency_ms = excluded.latency_ms,
        error = excluded.error, response_body = excluded.response_body
), settled AS (
    UPDATE deliveries d SET status = u.status, attempts = GREATEST(d.attempts, u.n),
        next_attempt_at_us = u.next_at, lease_until_us = NULL, updated_at_us = $8
    FROM unnest($1::text[], $9::text[], $2::integer[], $10::bigint[]) AS u(id, status, n, next_at)
    WHERE d.id = u.id AND d.status = 'pending'
)
UPDATE webhooks w SET failing_since_us = CASE e.mode WHEN 'clear' THEN NULL
                                                    WHEN 'set' THEN e.at
                                                    ELSE COALESCE(w.failing_since_us, e.at) END
FROM unnest($13::text[], $11::text[], $12::bigint[]) AS e(id, mode, at)
WHERE w.id = e.id;
