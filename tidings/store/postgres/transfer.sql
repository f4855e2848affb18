-- Named queries of the bulk copy between backends (PostgreSQL): rows as they are stored.

-- name: holds_anything
SELECT EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM webhooks)
    OR EXISTS (SELECT 1 FROM deliveries) OR EXISTS (SELECT 1 FROM dead_letters)
    OR (SELECT is_called FROM events_seq);

-- name: export_events
SELECT seq, id, type, source, subject, time_us, received_at_us, trace_id, idempotency_key,
       data_text, metadata_text, tenant, dedupe_key
FROM events WHERE seq > $1 ORDER BY seq LIMIT $2;

-- name: import_events
-- Rows with their own positions and stamps (run under the log lock): the sequence and the
-- last stamp move past them, so later appends go higher.
WITH state AS (
    UPDATE log_state SET received_at_us = GREATEST(received_at_us, $15) WHERE id = 1
)
INSERT INTO events (seq, tenant, id, type, source, subject, time_us, received_at_us, trace_id,
                    idempotency_key, dedupe_key, data_text, metadata_text, data, metadata)
SELECT u.seq, u.tenant, u.id, u.type, u.source, u.subject, u.time_us, u.received_at_us,
       u.trace_id, u.idempotency_key, u.dedupe_key, u.data_text, u.metadata_text,
       COALESCE(u.data_doc, u.data_text)::jsonb, COALESCE(u.metadata_doc, u.metadata_text)::jsonb
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::bigint[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
            $13::text[], $14::text[], $16::bigint[])
     AS u(seq, tenant, id, type, source, subject, time_us, trace_id, idempotency_key,
          dedupe_key, data_text, metadata_text, data_doc, metadata_doc, received_at_us)
ON CONFLICT DO NOTHING;

-- name: move_sequence_past
SELECT setval('events_seq', GREATEST($1, (SELECT CASE WHEN is_called THEN last_value ELSE 0 END
                                          FROM events_seq)));

-- name: export_purges
SELECT tenant, purged_through FROM purges ORDER BY tenant;

-- name: import_purge
INSERT INTO purges (tenant, purged_through, purged_at_us) VALUES ($1, $2, $3)
ON CONFLICT (tenant) DO UPDATE SET
    purged_through = GREATEST(purges.purged_through, excluded.purged_through);

-- name: export_deliveries
SELECT id, tenant, webhook_id, event_seq, event_id, message_id, status, attempts, max_attempts,
       next_attempt_at_us, created_at_us, updated_at_us
FROM deliveries WHERE id > $1 ORDER BY id LIMIT $2;

-- name: export_attempts
SELECT delivery_id, n, at_us, status_code, latency_ms, error, response_body
FROM delivery_attempts WHERE delivery_id = ANY($1::text[]) ORDER BY delivery_id, n;

-- name: import_delivery
INSERT INTO deliveries (id, tenant, webhook_id, event_seq, event_id, message_id, status,
                        attempts, max_attempts, next_attempt_at_us, lease_until_us,
                        created_at_us, updated_at_us)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11, $12)
ON CONFLICT DO NOTHING;

-- name: import_attempt
INSERT INTO delivery_attempts (delivery_id, n, at_us, status_code, latency_ms, error,
                               response_body)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT DO NOTHING;

-- name: export_dead_letters
SELECT seq, id, tenant, source, reason_code, reason, raw, topic, headers, received_at_us
FROM dead_letters WHERE seq > $1 ORDER BY seq LIMIT $2;

-- name: import_dead_letter
INSERT INTO dead_letters (seq, id, tenant, source, reason_code, reason, raw, topic, headers,
                          received_at_us)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT DO NOTHING;

-- name: move_dead_letter_sequence_past
SELECT setval(pg_get_serial_sequence('dead_letters', 'seq'), max(seq)) FROM dead_letters;
