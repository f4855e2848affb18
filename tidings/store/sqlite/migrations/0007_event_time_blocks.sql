-- A summary of the log in blocks of 1,024 positions, per tenant: the least and greatest
-- producer time in each, so a page over a time_since/time_until window reads only the blocks
-- that overlap it (tidings/store/time_blocks.py). Built in the background, not as events are appended.
CREATE TABLE event_time_blocks (
    tenant      TEXT    NOT NULL,
    block       INTEGER NOT NULL,  -- seq / 1024
    min_time_us INTEGER NOT NULL,
    max_time_us INTEGER NOT NULL,
    PRIMARY KEY (tenant, block)
) WITHOUT ROWID;

-- Blocks below next_block are summarised; the positions from next_block * 1024 on are not.
CREATE TABLE event_time_summary (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    next_block INTEGER NOT NULL
);
INSERT INTO event_time_summary (id, next_block) VALUES (1, 0);
