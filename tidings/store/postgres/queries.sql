-- name: lock_log
-- Simple-protocol text (no parameters), so BEGIN and the lock travel in one round trip. The
-- lock is held until COMMIT: the next group cannot draw positions before this one is visible.
BEGIN; SELECT pg_advisory_xact_lock(127996005019239);

-- name: wait_for_writers
-- Taken by a store that opens: a group in flight is visible before the head is read.
SELECT pg_advisory_xact_lock(127996005019239);

-- name: log_state
SELECT received_at_us FROM log_state WHERE id = 1;

-- name: draw
-- Reserve $1 consecutive positions; the lock makes the block ours alone. Sequences are not
-- transactional, so a rolled-back group leaves a hole that no later commit fills.
SELECT setval('events_seq', nextval('events_seq') + $1 - 1);

-- name: find_by_dedupe_keys
SELECT e.tenant, e.dedupe_key, e.seq, e.id, e.type, e.source, e.subject, e.data_text
FROM events e
JOIN unnest($1::text[], $2::text[]) AS k(tenant, dedupe_key)
  ON e.tenant = k.tenant AND e.dedupe_key = k.dedupe_key
WHERE e.dedupe_key IS NOT NULL;

-- name: insert_events
WITH state AS (
    UPDATE log_state SET received_at_us = GREATEST(received_at_us, $15) WHERE id = 1
)
INSERT INTO events (seq, tenant, id, type, source, subject, time_us, received_at_us, trace_id,
                    idempotency_key, dedupe_key, data_text, metadata_text, data, metadata)
SELECT u.seq, u.tenant, u.id, u.type, u.source, u.subject, u.time_us, $15, u.trace_id,
       u.idempotency_key, u.dedupe_key, u.data_text, u.metadata_text,
       COALESCE(u.data_doc, u.data_text)::jsonb, COALESCE(u.metadata_doc, u.metadata_text)::jsonb
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::bigint[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
            $13::text[], $14::text[])
     AS u(seq, tenant, id, type, source, subject, time_us, trace_id, idempotency_key,
          dedupe_key, data_text, metadata_text, data_doc, metadata_doc);

-- name: append_group
-- A whole group in one statement, committed on its own (one round trip). In order: the log
-- lock, then the state row (locked, and read at its newest version even if another group
-- committed since this statement began), then the positions, then the rows. Both locks are
-- held until the commit: the next group draws only once these rows are visible. The rows come
-- as one JSON array of objects ($1, built by orjson): one text parameter costs the driver far
-- less to encode than an array per column. An event's data and metadata sit in it as the JSON
-- they already are (``data``, ``metadata``: a json column gives its text back as it came), not
-- as strings to escape and unescape again; text a json column cannot take (``\u0000``) or
-- would turn into SQL NULL (a top-level ``null``) comes as a string (``data_text``...), with
-- the document to index beside it when that differs (``data_doc``...).
WITH state AS (
    UPDATE log_state SET received_at_us = GREATEST(received_at_us, $2)
    WHERE id = 1
      AND (SELECT 1 FROM (SELECT pg_advisory_xact_lock(127996005019239)) AS locked) = 1
    RETURNING received_at_us
), drawn AS (
    SELECT setval('events_seq', nextval('events_seq') + $3 - 1) AS last, received_at_us
    FROM state
), stored AS (
    INSERT INTO events (seq, tenant, id, type, source, subject, time_us, received_at_us,
                        trace_id, idempotency_key, dedupe_key, data_text, metadata_text, data,
                        metadata)
    SELECT d.last - $3 + u.n, u.tenant, u.id, u.type, u.source, u.subject, u.time_us,
           d.received_at_us, u.trace_id, u.idempotency_key, u.dedupe_key,
           COALESCE(u.data_text, u.data::text), COALESCE(u.metadata_text, u.metadata::text),
           COALESCE(u.data::jsonb, COALESCE(u.data_doc, u.data_text)::jsonb),
           COALESCE(u.metadata::jsonb, COALESCE(u.metadata_doc, u.metadata_text)::jsonb)
    FROM json_to_recordset($1::json)
         AS u(n bigint, tenant text, id text, type text, source text, subject text,
              time_us bigint, trace_id text, idempotency_key text, dedupe_key text,
              data json, metadata json, data_text text, metadata_text text, data_doc text,
              metadata_doc text),
         drawn d
    RETURNING 1
)
SELECT last, received_at_us, (SELECT count(*) FROM stored) FROM drawn;

-- name: sequence_position
-- The highest position ever given (a purge of the newest rows does not lower it).
SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_seq;

-- name: get_by_id
SELECT seq, id, type, source, subject, time_us, received_at_us, trace_id, idempotency_key,
       data_text, metadata_text, tenant
FROM events WHERE tenant = $1 AND id = $2 ORDER BY seq DESC LIMIT 1;

-- name: read_log
SELECT seq, id, type, source, subject, time_us, received_at_us, trace_id, idempotency_key,
       data_text, metadata_text, tenant
FROM events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3;

-- name: position_before
-- received_at never decreases with seq, so the last stamp before the time has the last seq
SELECT seq FROM events WHERE tenant = $1 AND received_at_us < $2
ORDER BY received_at_us DESC, seq DESC LIMIT 1;

-- name: first_received_from
SELECT seq FROM events WHERE tenant = $1 AND received_at_us >= $2
ORDER BY received_at_us, seq LIMIT 1;

-- name: last_received_through
SELECT seq FROM events WHERE tenant = $1 AND received_at_us <= $2
ORDER BY received_at_us DESC, seq DESC LIMIT 1;

-- name: max_position
SELECT max(seq) FROM events;

-- name: earliest
SELECT min(seq) FROM events WHERE tenant = $1;

-- name: purged_through
SELECT purged_through FROM purges WHERE tenant = $1;

-- name: purge_chunk
-- One chunk in one statement, so in one short transaction of its own.
WITH gone AS (
    DELETE FROM events WHERE seq IN (
        SELECT seq FROM events WHERE received_at_us < $1 AND seq < $2 ORDER BY seq LIMIT $3
    ) RETURNING tenant, seq
), noted AS (
    INSERT INTO purges (tenant, purged_through, purged_at_us)
    SELECT tenant, max(seq), $4 FROM gone GROUP BY tenant
    ON CONFLICT (tenant) DO UPDATE SET
        purged_through = GREATEST(purges.purged_through, excluded.purged_through),
        purged_at_us = excluded.purged_at_us
)
SELECT count(*) FROM gone;

-- name: count_events
SELECT count(*) FROM events WHERE tenant = $1;

-- name: count_by_type
SELECT type, count(*) FROM events WHERE tenant = $1 GROUP BY type ORDER BY 2 DESC, 1 LIMIT $2;

-- name: count_by_source
SELECT source, count(*) FROM events WHERE tenant = $1 GROUP BY source ORDER BY 2 DESC, 1
LIMIT $2;

-- name: count_by_hour
SELECT received_at_us / 3600000000 AS hour, count(*) FROM events
WHERE tenant = $1 AND received_at_us >= $2 GROUP BY hour ORDER BY hour;

-- name: size_bytes
SELECT pg_total_relation_size('events');

-- name: database_size
SELECT pg_database_size(current_database());

-- name: ping
SELECT 1;
