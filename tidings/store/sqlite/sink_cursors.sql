-- Named queries of the sink cursors (SQLite).

-- name: get_sink_cursor
SELECT position FROM sink_cursors WHERE sink = ?;

-- name: set_sink_cursor
INSERT INTO sink_cursors (sink, tenant, position, updated_at_us) VALUES (?, ?, ?, ?)
ON CONFLICT (sink) DO UPDATE SET position = MAX(position, excluded.position),
    updated_at_us = excluded.updated_at_us;

-- name: list_sink_cursors
SELECT sink, tenant, position, updated_at_us FROM sink_cursors ORDER BY sink;

-- name: delete_sink_cursor
DELETE FROM sink_cursors WHERE sink = ?;

-- name: floor_sink_cursors
SELECT MIN(position) + 1 FROM sink_cursors;
