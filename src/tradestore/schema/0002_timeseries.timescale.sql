-- tradestore 0002 (TimescaleDB): the time-partitioned tables as hypertables with the
-- seed's chunk intervals. The seed's keys omit the time column, which TimescaleDB
-- rejects: portfolio_snapshots and system_logs key on (id, time).

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
);

-- idx_market_data_symbol_tf_time (symbol, timeframe, timestamp DESC) is left out: it
-- duplicates the primary key exactly (a B-tree is read backwards as cheaply).
SELECT create_hypertable('market_data', 'timestamp', chunk_time_interval => INTERVAL '1 day',
                         create_default_indexes => FALSE);

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
);

SELECT create_hypertable('portfolio_snapshots', 'snapshot_time', chunk_time_interval => INTERVAL '7 days',
                         create_default_indexes => FALSE);

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
);

SELECT create_hypertable('system_logs', 'timestamp', chunk_time_interval => INTERVAL '1 day',
                         create_default_indexes => FALSE);

CREATE INDEX idx_system_logs_level_time ON system_logs (level, timestamp DESC);
CREATE INDEX idx_system_logs_category ON system_logs (category, timestamp DESC);
CREATE INDEX idx_system_logs_strategy ON system_logs (strategy_id, timestamp DESC) WHERE strategy_id IS NOT NULL;
