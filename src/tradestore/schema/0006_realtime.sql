-- tradestore 0006: snapshots of per-strategy state kept in Redis, so a Redis flush loses
-- nothing that was snapshotted (see tradestore/realtime/state.py).
CREATE TABLE strategy_state (
    strategy_id UUID NOT NULL REFERENCES strategies(id) ON DELETE CASCADE,
    key VARCHAR(200) NOT NULL,
    value JSONB NOT NULL,
    version BIGINT NOT NULL CHECK (version > 0),
    snapshot_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    PRIMARY KEY (strategy_id, key)
);
