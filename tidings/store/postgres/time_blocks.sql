-- Named queries of the summary of producer times by block of positions (time_blocks.py).

-- name: summarised
SELECT next_block FROM event_time_summary WHERE id = 1;

-- name: overlapping_desc
-- How far the summary goes, and the blocks of a tenant between two block numbers (and below
-- that) whose times meet the window, in one round trip.
SELECT s.next_block, ARRAY(
    SELECT block FROM event_time_blocks
    WHERE tenant = $1 AND block BETWEEN $2 AND LEAST($3, s.next_block - 1)
      AND max_time_us >= $4 AND min_time_us <= $5
    ORDER BY block DESC
) FROM event_time_summary s WHERE s.id = 1;

-- name: overlapping_asc
SELECT s.next_block, ARRAY(
    SELECT block FROM event_time_blocks
    WHERE tenant = $1 AND block BETWEEN $2 AND LEAST($3, s.next_block - 1)
      AND max_time_us >= $4 AND min_time_us <= $5
    ORDER BY block ASC
) FROM event_time_summary s WHERE s.id = 1;

-- name: lock_summary
-- One catch-up at a time across the nodes sharing the database.
SELECT next_block FROM event_time_summary WHERE id = 1 FOR UPDATE;

-- name: summarise
-- (block size, first position, position after the last). Positions become visible in commit
-- order, so every block below the visible head is complete.
INSERT INTO event_time_blocks (tenant, block, min_time_us, max_time_us)
SELECT tenant, seq / $1::bigint, min(time_us), max(time_us) FROM events
WHERE seq >= $2 AND seq < $3 GROUP BY 1, 2
ON CONFLICT (tenant, block) DO UPDATE SET
    min_time_us = LEAST(event_time_blocks.min_time_us, excluded.min_time_us),
    max_time_us = GREATEST(event_time_blocks.max_time_us, excluded.max_time_us);

-- name: summarised_to
UPDATE event_time_summary SET next_block = GREATEST(next_block, $1) WHERE id = 1;

-- name: prune
-- After a purge: a tenant's blocks below the one of its oldest event hold none of its events
-- (all of them, below the summarised ones, when it has none left).
DELETE FROM event_time_blocks b
WHERE b.block < COALESCE(
    (SELECT min(seq) FROM events e WHERE e.tenant = b.tenant) / $1,
    (SELECT next_block FROM event_time_summary WHERE id = 1)
);

-- name: head
SELECT COALESCE(max(seq), 0) FROM events;
