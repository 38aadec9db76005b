-- Strategy state snapshots remember deletions and expiry, so a restore after a Redis
-- flush brings back neither a deleted key nor an expired one, and keeps TTLs.
ALTER TABLE strategy_state
    ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN expires_at TIMESTAMP WITH TIME ZONE;
