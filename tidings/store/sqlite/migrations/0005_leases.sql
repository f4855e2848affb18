-- Leases: work owned by one node at a time (holder, expiry), taken over after expiry.
-- generation grows with every new holder, so a holder paused past its expiry can tell.
CREATE TABLE leases (
    name          TEXT    PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    holder        TEXT    NOT NULL,
    expires_at_us INTEGER NOT NULL,
    generation    INTEGER NOT NULL
);
