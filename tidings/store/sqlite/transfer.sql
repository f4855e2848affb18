-- Named queries of the bulk copy between backends (SQLite): rows as they are stored.

-- name: holds_anything
SELECT EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM webhooks)
    OR EXISTS (SELECT 1 FROM deliveries) OR EXISTS (SELECT 1 FROM dead_letters)
    OR COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0) > 0;

-- name: export_events
SELECT seq, id, type, source, subject, time_us, received_at_us, trace_id, idempotency_key,
       data, metadata, tenant, dedupe_key
FROM events WHERE seq > ? ORDER BY seq LIMIT ?;

-- name: import_event
-- An explicit seq moves AUTOINCREMENT's counter past it, so later appends go higher.
INSERT OR IGNORE INTO events (seq, id, type, source, subject, time_us, received_at_us,
                              trace_id, idempotency_key, data, metadata, tenant, dedupe_key)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: export_purges
SELECT tenant, purged_through FROM purges ORDER BY tenant;

-- name: import_purge
INSERT INTO purges (tenant, purged_through, purged_at_us) VALUES (?, ?, ?)
ON CONFLICT (tenant) DO UPDATE SET purged_through = MAX(purged_through, excluded.purged_through);

-- name: export_deliveries
SELECT id, tenant, webhook_id, event_seq, event_id, message_id, status, attempts, max_attempts,
       next_attempt_at_us, created_at_us, updated_at_us
FROM deliveries WHERE id > ? ORDER BY id LIMIT ?;

-- name: export_attempts
SELECT n, at_us, status_code, latency_ms, error, response_body
FROM delivery_attempts WHERE delivery_id = ? ORDER BY n;

-- name: import_delivery
INSERT OR IGNORE INTO deliveries (id, tenant, webhook_id, event_seq, event_id, message_id,
                                  status, attempts, max_attempts, next_attempt_at_us,
                                  lease_until_us, created_at_us, updated_at_us)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?);

-- name: import_attempt
INSERT OR IGNORE INTO delivery_attempts (delivery_id, n, at_us, status_code, latency_ms, error,
                                         response_body)
VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: export_dead_letters
SELECT seq, id, tenant, source, reason_code, reason, raw, topic, headers, received_at_us
FROM dead_letters WHERE seq > ? ORDER BY seq LIMIT ?;

-- name: import_dead_letter
INSERT OR IGNORE INTO dead_letters (seq, id, tenant, source, reason_code, reason, raw, topic,
                                    headers, received_at_us)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?);
