-- tradestore 0009 (plain PostgreSQL): archive, retention policies, rollups.

-- ---------------------------------------------------------------------------
-- Trade archive (the seed's trades_archive) and the log of archive runs
-- ---------------------------------------------------------------------------
CREATE TABLE trades_archive (LIKE trades INCLUDING ALL);

CREATE TABLE archive_runs (
    id BIGSERIAL PRIMARY KEY,
    cutoff TIMESTAMP WITH TIME ZONE NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'RUNNING' CHECK (status IN ('RUNNING', 'DONE', 'FAILED')),
    moved BIGINT NOT NULL DEFAULT 0,
    eligible_before BIGINT NOT NULL,     -- trades older than the cutoff when the run began
    archive_before BIGINT NOT NULL,      -- rows in trades_archive when the run began
    started_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    finished_at TIMESTAMP WITH TIME ZONE,
    error_message TEXT
);
-- at most one unfinished run: a crashed run is resumed, not duplicated
CREATE UNIQUE INDEX uq_archive_runs_running ON archive_runs ((true)) WHERE status = 'RUNNING';

-- ---------------------------------------------------------------------------
-- Retention: how long each time-partitioned table keeps its rows (NULL = forever)
-- ---------------------------------------------------------------------------
CREATE TABLE retention_policy (
    table_name TEXT PRIMARY KEY CHECK (table_name IN ('market_data', 'portfolio_snapshots', 'system_logs')),
    keep INTERVAL CHECK (keep IS NULL OR keep > INTERVAL '0'),
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);
INSERT INTO retention_policy (table_name, keep) VALUES
    ('market_data', NULL), ('portfolio_snapshots', NULL), ('system_logs', INTERVAL '30 days');

-- ---------------------------------------------------------------------------
-- Rollups of one-minute candles into 5m, 15m, 30m, 1h, 4h and 1d
-- ---------------------------------------------------------------------------
CREATE TABLE market_data_rollup (
    symbol VARCHAR(20) NOT NULL,
    timeframe VARCHAR(5) NOT NULL CHECK (timeframe IN ('5m', '15m', '30m', '1h', '4h', '1d')),
    timestamp TIMESTAMP WITH TIME ZONE NOT NULL,
    open DECIMAL(18, 8) NOT NULL,
    high DECIMAL(18, 8) NOT NULL,
    low DECIMAL(18, 8) NOT NULL,
    close DECIMAL(18, 8) NOT NULL,
    volume DECIMAL(18, 8) NOT NULL,
    trades_count INTEGER,
    vwap DECIMAL(18, 8),
    PRIMARY KEY (symbol, timeframe, timestamp)
);

-- UTC days of one-minute data changed since they were last rolled up.
CREATE TABLE rollup_dirty (
    symbol VARCHAR(20) NOT NULL,
    day DATE NOT NULL,
    marked_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    PRIMARY KEY (symbol, day)
);

CREATE TABLE rollup_state (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    last_refresh_at TIMESTAMP WITH TIME ZONE
);
INSERT INTO rollup_state (id) VALUES (TRUE);

-- One statement-level trigger per operation (transition tables): the cost is one
-- INSERT ... SELECT DISTINCT per ingest statement, not a call per row.
CREATE FUNCTION rollup_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_dirty (symbol, day)
    SELECT DISTINCT symbol, (timestamp AT TIME ZONE 'UTC')::date FROM changed_rows
     WHERE timeframe = '1m'
    ON CONFLICT (symbol, day) DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER rollup_dirty_insert AFTER INSERT ON market_data
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION rollup_mark_dirty();
CREATE TRIGGER rollup_dirty_update AFTER UPDATE ON market_data
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION rollup_mark_dirty();
CREATE TRIGGER rollup_dirty_delete AFTER DELETE ON market_data
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION rollup_mark_dirty();
