-- tradestore 0002 (plain PostgreSQL): the time-partitioned tables as native range-
-- partitioned tables. The seed's keys omit the time column, which partitioning rejects:
-- portfolio_snapshots and system_logs key on (id, time). Partitions are made on demand
-- by ts_ensure_partition() for any timestamp written, and ahead of now by
-- ts_premake_partitions(); see tradestore/db/partitions.py.
--
-- Partition widths differ from the seed's TimescaleDB chunk intervals on purpose:
-- a native partition costs planning time on every query that cannot prune, so market
-- data and snapshots are partitioned by month (a 2019 backfill makes ~80 partitions,
-- not ~2,500); system logs, kept 30 days, by day so retention drops whole days.

CREATE TABLE market_data (
    id BIGSERIAL,
    symbol VARCHAR(20) NOT NULL,
    timeframe VARCHAR(5) NOT NULL,
    timestamp TIMESTAMP WITH TIME ZONE NOT NULL,
    open DECIMAL(18, 8) NOT NULL,
    high DECIMAL(18, 8) NOT NULL,
    low DECIMAL(18, 8) NOT NULL,
    close DECIMAL(18, 8) NOT NULL,
    volume DECIMAL(18, 8) NOT NULL,
    trades_count INTEGER,
    vwap DECIMAL(18, 8),
    data_source VARCHAR(20) DEFAULT 'dydx',
    data_quality_score SMALLINT DEFAULT 100 CHECK (data_quality_score BETWEEN 0 AND 100),
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    CONSTRAINT valid_ohlc CHECK (high >= low AND high >= open AND high >= close AND low <= open AND low <= close),
    CONSTRAINT valid_volume CHECK (volume >= 0),
    PRIMARY KEY (symbol, timeframe, timestamp)
) PARTITION BY RANGE (timestamp);

-- idx_market_data_symbol_tf_time (symbol, timeframe, timestamp DESC) is left out: it
-- duplicates the primary key exactly (a B-tree is read backwards as cheaply).
CREATE INDEX idx_market_data_time ON market_data (timestamp DESC);
CREATE INDEX idx_market_data_volume ON market_data (symbol, volume DESC) WHERE volume > 0;

CREATE TABLE portfolio_snapshots (
    id UUID NOT NULL DEFAULT gen_random_uuid(),
    strategy_id UUID REFERENCES strategies(id) ON DELETE CASCADE,
    snapshot_time TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    total_value DECIMAL(18, 8) NOT NULL,
    cash_balance DECIMAL(18, 8) NOT NULL,
    unrealized_pnl DECIMAL(18, 8) DEFAULT 0,
    realized_pnl DECIMAL(18, 8) DEFAULT 0,
    positions JSONB NOT NULL DEFAULT '[]',
    open_orders_count INTEGER DEFAULT 0,
    total_exposure DECIMAL(18, 8) DEFAULT 0,
    leverage DECIMAL(8, 4) DEFAULT 0,
    daily_pnl DECIMAL(18, 8),
    daily_pnl_percent DECIMAL(8, 4),
    metadata JSONB DEFAULT '{}',
    PRIMARY KEY (id, snapshot_time)
) PARTITION BY RANGE (snapshot_time);

CREATE INDEX idx_portfolio_snapshots_strategy_time ON portfolio_snapshots (strategy_id, snapshot_time DESC);
CREATE INDEX idx_portfolio_snapshots_time ON portfolio_snapshots (snapshot_time DESC);

CREATE TABLE system_logs (
    id BIGSERIAL,
    timestamp TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    level VARCHAR(10) NOT NULL CHECK (level IN ('DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL')),
    category VARCHAR(50) NOT NULL,
    strategy_id UUID REFERENCES strategies(id) ON DELETE SET NULL,
    trade_id UUID REFERENCES trades(id) ON DELETE SET NULL,
    order_id UUID REFERENCES orders(id) ON DELETE SET NULL,
    message TEXT NOT NULL,
    details JSONB,
    user_id VARCHAR(100),
    session_id VARCHAR(100),
    ip_address INET,
    user_agent TEXT,
    PRIMARY KEY (id, timestamp)
) PARTITION BY RANGE (timestamp);

CREATE INDEX idx_system_logs_level_time ON system_logs (level, timestamp DESC);
CREATE INDEX idx_system_logs_category ON system_logs (category, timestamp DESC);
CREATE INDEX idx_system_logs_strategy ON system_logs (strategy_id, timestamp DESC) WHERE strategy_id IS NOT NULL;

-- ----------------------------------------------------------------------------
-- Automatic partition management
-- ----------------------------------------------------------------------------
CREATE TABLE ts_partition_policy (
    table_name TEXT PRIMARY KEY,
    time_column TEXT NOT NULL,
    partition_interval INTERVAL NOT NULL
        CHECK (partition_interval IN ('1 day', '7 days', '1 mon')),
    premake INTEGER NOT NULL DEFAULT 2 CHECK (premake >= 0)
);

INSERT INTO ts_partition_policy (table_name, time_column, partition_interval, premake) VALUES
    ('market_data', 'timestamp', '1 mon', 2),
    ('portfolio_snapshots', 'snapshot_time', '1 mon', 2),
    ('system_logs', 'timestamp', '1 day', 7);

-- The start (UTC) of the partition holding p_ts.
CREATE FUNCTION ts_partition_start(p_interval INTERVAL, p_ts TIMESTAMPTZ)
RETURNS TIMESTAMPTZ LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE p_interval
        WHEN INTERVAL '1 mon' THEN date_trunc('month', p_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        WHEN INTERVAL '1 day' THEN date_trunc('day', p_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        -- ISO weeks, Monday 00:00 UTC
        ELSE date_bin(p_interval, p_ts, TIMESTAMPTZ '2000-01-03 00:00:00+00')
    END
$$;

-- Ensure the partition of p_table that holds p_ts exists; returns its name and bounds.
-- Safe when many sessions ask for the same new partition at once: they serialise on an
-- advisory lock named after the partition and re-check after taking it. The partition
-- is created standalone and then ATTACHed, which locks the parent only in SHARE UPDATE
-- EXCLUSIVE mode, so running reads and writes on the parent are not blocked.
CREATE FUNCTION ts_ensure_partition(p_table TEXT, p_ts TIMESTAMPTZ,
    OUT partition_name TEXT, OUT range_start TIMESTAMPTZ, OUT range_end TIMESTAMPTZ)
LANGUAGE plpgsql AS $$
DECLARE
    pol ts_partition_policy%ROWTYPE;
BEGIN
    SELECT * INTO pol FROM ts_partition_policy WHERE table_name = p_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not time-partitioned', p_table USING ERRCODE = 'undefined_table';
    END IF;
    range_start := ts_partition_start(pol.partition_interval, p_ts);
    range_end := range_start + pol.partition_interval;
    partition_name := p_table || '_p' || to_char(range_start AT TIME ZONE 'UTC', 'YYYYMMDD');
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = current_schema() AND c.relname = partition_name) THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('tradestore.partition'), hashtext(partition_name));
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = current_schema() AND c.relname = partition_name) THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                   partition_name, p_table);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   p_table, partition_name, range_start, range_end);
END
$$;

-- Ensure every partition of p_table covering [p_from, p_to]; one row per partition.
CREATE FUNCTION ts_ensure_partitions(p_table TEXT, p_from TIMESTAMPTZ, p_to TIMESTAMPTZ)
RETURNS TABLE (partition_name TEXT, range_start TIMESTAMPTZ, range_end TIMESTAMPTZ)
LANGUAGE plpgsql AS $$
DECLARE
    ts TIMESTAMPTZ := p_from;
BEGIN
    IF p_to < p_from THEN
        RAISE EXCEPTION 'range end % is before its start %', p_to, p_from;
    END IF;
    LOOP
        SELECT e.partition_name, e.range_start, e.range_end
          INTO partition_name, range_start, range_end
          FROM ts_ensure_partition(p_table, ts) e;
        RETURN NEXT;
        EXIT WHEN range_end > p_to;
        ts := range_end;
    END LOOP;
END
$$;

-- Premake partitions from the current one to `premake` intervals ahead, for every table.
CREATE FUNCTION ts_premake_partitions()
RETURNS TABLE (partition_name TEXT, range_start TIMESTAMPTZ, range_end TIMESTAMPTZ)
LANGUAGE sql AS $$
    SELECT e.*
      FROM ts_partition_policy p,
           LATERAL ts_ensure_partitions(p.table_name, now(),
                                        now() + p.partition_interval * p.premake) e
$$;

SELECT count(*) FROM ts_premake_partitions();
