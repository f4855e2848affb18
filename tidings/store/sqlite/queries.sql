-- name: find_by_dedupe_key
SELECT seq, id, type, source, subject, data FROM events WHERE tenant = ? AND dedupe_key = ?;

-- name: insert_event
INSERT INTO events (tenant, id, type, source, subject, time_us, received_at_us, trace_id,
                    idempotency_key, dedupe_key, data, metadata)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: last_position
-- received_at never decreases with seq, so the newest row holds the latest stamp: no scan
SELECT COALESCE(MAX(seq), 0),
       COALESCE((SELECT received_at_us FROM events ORDER BY seq DESC LIMIT 1), 0)
FROM events;

-- name: sequence_position
-- after a purge of the newest rows MAX(seq) forgets, AUTOINCREMENT's counter does not
SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0);

-- name: get_by_id
SELECT seq, id, type, source, subject, time_us, received_at_us, trace_id, idempotency_key,
       data, metadata, tenant
FROM events WHERE tenant = ? AND id = ? ORDER BY seq DESC LIMIT 1;

-- name: read_log
SELECT seq, id, type, source, subject, time_us, received_at_us, trace_id, idempotency_key,
       data, metadata, tenant
FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?;

-- name: position_before
SELECT MAX(seq) FROM events WHERE tenant = ? AND received_at_us < ?;

-- name: first_received_from
SELECT seq FROM events WHERE tenant = ? AND received_at_us >= ?
ORDER BY received_at_us, seq LIMIT 1;

-- name: last_received_through
SELECT seq FROM events WHERE tenant = ? AND received_at_us <= ?
ORDER BY received_at_us DESC, seq DESC LIMIT 1;

-- name: earliest
SELECT MIN(seq) FROM events WHERE tenant = ?;

-- name: purged_through
SELECT purged_through FROM purges WHERE tenant = ?;

-- name: purge_chunk
DELETE FROM events WHERE seq IN (
    SELECT seq FROM events WHERE received_at_us < ? AND seq < ? ORDER BY seq LIMIT ?
) RETURNING tenant, seq;

-- name: record_purge
INSERT INTO purges (tenant, purged_through, purged_at_us) VALUES (?, ?, ?)
ON CONFLICT (tenant) DO UPDATE SET
    purged_through = MAX(purged_through, excluded.purged_through),
    purged_at_us = excluded.purged_at_us;

-- name: count_events
SELECT COUNT(*) FROM events WHERE tenant = ?;

-- name: count_by_type
SELECT type, COUNT(*) FROM events WHERE tenant = ? GROUP BY type ORDER BY 2 DESC LIMIT ?;

-- name: count_by_source
SELECT source, COUNT(*) FROM events WHERE tenant = ? GROUP BY source ORDER BY 2 DESC LIMIT ?;

-- name: count_by_hour
SELECT received_at_us / 3600000000 AS hour, COUNT(*) FROM events
WHERE tenant = ? AND received_at_us >= ? GROUP BY hour ORDER BY hour;

-- name: ping
SELECT 1;
