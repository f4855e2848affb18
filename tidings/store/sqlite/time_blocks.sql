-- Named queries of the summary of producer times by block of positions (time_blocks.py).

-- name: summarised
SELECT next_block FROM event_time_summary WHERE id = 1;

-- name: overlapping_desc
-- The summarised blocks of a tenant between two block numbers whose times meet the window.
SELECT block FROM event_time_blocks
WHERE tenant = ? AND block BETWEEN ? AND ? AND max_time_us >= ? AND min_time_us <= ?
ORDER BY block DESC;

-- name: overlapping_asc
SELECT block FROM event_time_blocks
WHERE tenant = ? AND block BETWEEN ? AND ? AND max_time_us >= ? AND min_time_us <= ?
ORDER BY block ASC;

-- name: summarise
-- (block size, first position, position after the last): one row per tenant and block.
SELECT tenant, seq / ?1 AS block, min(time_us), max(time_us) FROM events
WHERE seq >= ?2 AND seq < ?3 GROUP BY tenant, block;

-- name: put_block
INSERT INTO event_time_blocks (tenant, block, min_time_us, max_time_us) VALUES (?, ?, ?, ?)
ON CONFLICT (tenant, block) DO UPDATE SET
    min_time_us = MIN(min_time_us, excluded.min_time_us),
    max_time_us = MAX(max_time_us, excluded.max_time_us);

-- name: summarised_to
UPDATE event_time_summary SET next_block = MAX(next_block, ?) WHERE id = 1;

-- name: prune
-- After a purge: a tenant's blocks below the one of its oldest event hold none of its events
-- (all of them, below the summarised ones, when it has none left).
DELETE FROM event_time_blocks
WHERE block < COALESCE(
    (SELECT min(seq) FROM events WHERE events.tenant = event_time_blocks.tenant) / ?,
    (SELECT next_block FROM event_time_summary WHERE id = 1)
);
