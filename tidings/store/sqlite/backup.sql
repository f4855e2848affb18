-- Named queries of the backup's look at its copy (SQLite).

-- name: count_events
SELECT COUNT(*) FROM events;

-- name: sequence_position
SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0);
