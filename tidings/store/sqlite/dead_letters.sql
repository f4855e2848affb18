-- Named queries of the dead letters (SQLite). The list query is assembled from the filters
-- given, in tidings/store/sqlite/dead_letters.py, out of fixed fragments only.

-- name: insert_dead_letter
INSERT INTO dead_letters (tenant, id, source, reason_code, reason, raw, topic, headers,
                          received_at_us)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: get_dead_letter
SELECT seq, id, tenant, source, reason_code, reason, raw, topic, headers, received_at_us
FROM dead_letters WHERE tenant = ? AND id = ?;

-- name: delete_dead_letter
DELETE FROM dead_letters WHERE tenant = ? AND id = ?;

-- name: count_dead_letters
SELECT COUNT(*) FROM dead_letters WHERE tenant = ?;

-- name: last_dead_letter
SELECT COALESCE(MAX(seq), 0) FROM dead_letters WHERE tenant = ?;
