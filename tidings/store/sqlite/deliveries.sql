-- name: insert_endpoint
INSERT INTO webhooks (id, tenant, url, events, filter, secrets, active, description, rate_limit,
                      headers, created_at_us, updated_at_us, disabled_reason, cursor,
                      failing_since_us)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: update_endpoint
UPDATE webhooks SET url = ?, events = ?, filter = ?, secrets = ?, active = ?, description = ?,
    rate_limit = ?, headers = ?, updated_at_us = ?, disabled_reason = ?, failing_since_us = ?
WHERE tenant = ? AND id = ?;

-- name: delete_endpoint
DELETE FROM webhooks WHERE tenant = ? AND id = ?;

-- name: select_endpoint
SELECT id, tenant, url, events, filter, secrets, active, description, rate_limit, headers,
       created_at_us, updated_at_us, disabled_reason, cursor, failing_since_us
FROM webhooks WHERE tenant = ? AND id = ?;

-- name: select_endpoints
SELECT id, tenant, url, events, filter, secrets, active, description, rate_limit, headers,
       created_at_us, updated_at_us, disabled_reason, cursor, failing_since_us
FROM webhooks WHERE (?1 IS NULL OR tenant = ?1) ORDER BY created_at_us, id;

-- name: move_cursor
UPDATE webhooks SET cursor = MAX(cursor, ?) WHERE id = ?;

-- name: insert_delivery
INSERT INTO deliveries (id, tenant, webhook_id, event_seq, event_id, message_id, status,
                        attempts, max_attempts, next_attempt_at_us, lease_until_us,
                        created_at_us, updated_at_us)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: claim_due
UPDATE deliveries SET lease_until_us = ?3
WHERE id IN (
    SELECT id FROM deliveries
    WHERE status = 'pending' AND next_attempt_at_us <= ?1
      AND (lease_until_us IS NULL OR lease_until_us < ?1)
    ORDER BY next_attempt_at_us LIMIT ?2
)
RETURNING id, tenant, webhook_id, event_seq, event_id, message_id, status, attempts,
          max_attempts, next_attempt_at_us, created_at_us, updated_at_us;

-- name: insert_attempt
INSERT OR REPLACE INTO delivery_attempts (delivery_id, n, at_us, status_code, latency_ms, error,
                                          response_body)
VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: finish_attempt
UPDATE deliveries SET status = ?, attempts = MAX(attempts, ?), next_attempt_at_us = ?,
    lease_until_us = NULL, updated_at_us = ?
WHERE id = ? AND status = 'pending';

-- name: endpoint_succeeded
UPDATE webhooks SET failing_since_us = NULL WHERE id = ?;

-- name: endpoint_failed
UPDATE webhooks SET failing_since_us = COALESCE(failing_since_us, ?) WHERE id = ?;

-- name: release_leases
UPDATE deliveries SET lease_until_us = NULL WHERE status = 'pending' AND lease_until_us IS NOT NULL;

-- name: cancel_pending
UPDATE deliveries SET status = 'cancelled', next_attempt_at_us = NULL, lease_until_us = NULL,
    updated_at_us = ?
WHERE tenant = ? AND webhook_id = ? AND status = 'pending';

-- name: cancel_delivery
UPDATE deliveries SET status = 'cancelled', next_attempt_at_us = NULL, lease_until_us = NULL,
    updated_at_us = ?
WHERE id = ? AND status = 'pending';

-- name: select_delivery
SELECT id, tenant, webhook_id, event_seq, event_id, message_id, status, attempts, max_attempts,
       next_attempt_at_us, created_at_us, updated_at_us
FROM deliveries WHERE tenant = ? AND id = ?;

-- name: select_deliveries
SELECT id, tenant, webhook_id, event_seq, event_id, message_id, status, attempts, max_attempts,
       next_attempt_at_us, created_at_us, updated_at_us
FROM deliveries
WHERE tenant = ?1 AND webhook_id = ?2 AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR id < ?4)
ORDER BY id DESC LIMIT ?5;

-- name: select_attempts
SELECT n, at_us, status_code, latency_ms, error, response_body
FROM delivery_attempts WHERE delivery_id = ? ORDER BY n;

-- name: retry_delivery
UPDATE deliveries SET status = 'pending', max_attempts = attempts + 1, next_attempt_at_us = ?,
    lease_until_us = NULL, updated_at_us = ?
WHERE tenant = ? AND id = ? AND status != 'pending';

-- name: floor_pending
SELECT MIN(event_seq) FROM deliveries WHERE status = 'pending';

-- name: floor_cursors
SELECT MIN(cursor) + 1 FROM webhooks WHERE active = 1;

-- name: purge_finished_chunk
DELETE FROM deliveries WHERE id IN (
    SELECT id FROM deliveries WHERE status != 'pending' AND updated_at_us < ? LIMIT ?
) RETURNING id;

-- name: delete_attempts
DELETE FROM delivery_attempts WHERE delivery_id = ?;

-- name: count_by_status
SELECT status, COUNT(*) FROM deliveries WHERE tenant = ? GROUP BY status;

-- name: oldest_pending
SELECT MIN(created_at_us) FROM deliveries WHERE tenant = ? AND status = 'pending';

-- name: attempts_by_endpoint_since
SELECT d.webhook_id, SUM(CASE WHEN a.status_code BETWEEN 200 AND 299 THEN 1 ELSE 0 END), COUNT(*)
FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
WHERE d.tenant = ? AND a.at_us >= ? GROUP BY d.webhook_id;

-- name: attempts_since
SELECT CASE WHEN a.status_code BETWEEN 200 AND 299 THEN 'succeeded' ELSE 'failed' END, COUNT(*)
FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
WHERE d.tenant = ? AND a.at_us >= ? GROUP BY 1;
