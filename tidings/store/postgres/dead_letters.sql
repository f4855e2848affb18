-- Named queries of the dead letters (PostgreSQL). The list query is assembled from the filters
-- given, in tidings/store/postgres/dead_letters.py, out of fixed fragments only.

-- name: insert_dead_letter
INSERT INTO dead_letters (tenant, id, source, reason_code, reason, raw, topic, headers,
                          received_at_us)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING seq;

-- name: get_dead_letter
SELECT seq, id, tenant, source, reason_code, reason, raw, topic, headers, received_at_us
FROM dead_letters WHERE tenant = $1 AND id = $2;

-- name: delete_dead_letter
DELETE FROM dead_letters WHERE tenant = $1 AND id = $2;

-- name: last_dead_letter
SELECT COALESCE(max(seq), 0) FROM dead_letters WHERE tenant = $1;
