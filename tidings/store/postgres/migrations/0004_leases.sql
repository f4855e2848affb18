-- Leases: work owned by one node at a time (holder, expiry), taken over after expiry.
-- generation grows with every new holder, so a holder paused past its expiry can tell.
CREATE TABLE leases (
    name          text    PRIMARY KEY,
    tenant        text    NOT NULL,
    holder        text    NOT NULL,
    expires_at_us bigint  NOT NULL,
    generation    bigint  NOT NULL
);
