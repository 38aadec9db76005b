-- tradestore 0001: the seed's non-time-series tables, with every column, default,
-- CHECK, foreign key and index of the specification (seed/architecture.md).
-- Time-partitioned tables (market_data, portfolio_snapshots, system_logs) are in 0002,
-- which has one variant per time-series mode.

-- ============================================================================
-- STRATEGIES
-- ============================================================================
CREATE TABLE strategies (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name VARCHAR(100) NOT NULL UNIQUE,
    version VARCHAR(20) NOT NULL,
    description TEXT,
    author VARCHAR(100),
    config JSONB NOT NULL,
    timeframe VARCHAR(5) NOT NULL CHECK (timeframe IN ('1m', '5m', '15m', '30m', '1h', '4h', '1d')),
    symbols TEXT[] NOT NULL,
    is_active BOOLEAN DEFAULT FALSE,
    is_paper_trading BOOLEAN DEFAULT TRUE,
    total_trades INTEGER DEFAULT 0,
    winning_trades INTEGER DEFAULT 0,
    total_pnl DECIMAL(18, 8) DEFAULT 0,
    max_drawdown DECIMAL(8, 4) DEFAULT 0,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    last_executed_at TIMESTAMP WITH TIME ZONE,
    CONSTRAINT valid_config CHECK (jsonb_typeof(config) = 'object'),
    -- The seed's array_length(symbols, 1) > 0 is NULL (so passes) for an empty array.
    CONSTRAINT valid_symbols CHECK (cardinality(symbols) > 0)
);

CREATE INDEX idx_strategies_active ON strategies (is_active, is_paper_trading);
CREATE INDEX idx_strategies_symbols ON strategies USING GIN (symbols);
CREATE INDEX idx_strategies_timeframe ON strategies (timeframe);
CREATE INDEX idx_strategies_performance ON strategies (total_pnl DESC, max_drawdown ASC);

-- ============================================================================
-- TRADES
-- ============================================================================
CREATE TABLE trades (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    strategy_id UUID NOT NULL REFERENCES strategies(id) ON DELETE CASCADE,
    external_order_id VARCHAR(100),
    symbol VARCHAR(20) NOT NULL,
    side VARCHAR(5) NOT NULL CHECK (side IN ('BUY', 'SELL')),
    type VARCHAR(20) DEFAULT 'MARKET' CHECK (type IN ('MARKET', 'LIMIT', 'STOP_LOSS', 'TAKE_PROFIT')),
    entry_price DECIMAL(18, 8) NOT NULL,
    exit_price DECIMAL(18, 8),
    quantity DECIMAL(18, 8) NOT NULL CHECK (quantity > 0),
    filled_quantity DECIMAL(18, 8) DEFAULT 0,
    entry_time TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    exit_time TIMESTAMP WITH TIME ZONE,
    pnl DECIMAL(18, 8),
    pnl_percent DECIMAL(8, 4),
    fees DECIMAL(18, 8) DEFAULT 0,
    status VARCHAR(20) DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'CLOSED', 'CANCELLED', 'PARTIALLY_FILLED')),
    exit_reason VARCHAR(50),
    entry_signal JSONB,
    exit_signal JSONB,
    entry_tag VARCHAR(100),
    exit_tag VARCHAR(100),
    stop_loss_price DECIMAL(18, 8),
    take_profit_price DECIMAL(18, 8),
    metadata JSONB DEFAULT '{}',
    notes TEXT,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

CREATE INDEX idx_trades_strategy_symbol ON trades (strategy_id, symbol);
CREATE INDEX idx_trades_symbol_time ON trades (symbol, entry_time DESC);
CREATE INDEX idx_trades_status ON trades (status) WHERE status IN ('OPEN', 'PARTIALLY_FILLED');
CREATE INDEX idx_trades_pnl ON trades (pnl DESC) WHERE pnl IS NOT NULL;
CREATE INDEX idx_trades_entry_time ON trades (entry_time DESC);
CREATE INDEX idx_trades_strategy_performance ON trades (strategy_id, pnl) WHERE pnl IS NOT NULL;
CREATE INDEX idx_trades_active ON trades (symbol, entry_time)
    WHERE status IN ('OPEN', 'PARTIALLY_FILLED');

-- ============================================================================
-- STRATEGY PERFORMANCE METRICS (daily aggregates)
-- ============================================================================
CREATE TABLE strategy_metrics (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    strategy_id UUID NOT NULL REFERENCES strategies(id) ON DELETE CASCADE,
    date DATE NOT NULL,
    total_trades INTEGER DEFAULT 0,
    winning_trades INTEGER DEFAULT 0,
    losing_trades INTEGER DEFAULT 0,
    total_pnl DECIMAL(18, 8) DEFAULT 0,
    gross_profit DECIMAL(18, 8) DEFAULT 0,
    gross_loss DECIMAL(18, 8) DEFAULT 0,
    win_rate DECIMAL(5, 4) DEFAULT 0 CHECK (win_rate BETWEEN 0 AND 1),
    profit_factor DECIMAL(8, 4) DEFAULT 0,
    max_drawdown DECIMAL(8, 4) DEFAULT 0,
    max_drawdown_duration INTEGER DEFAULT 0,
    sharpe_ratio DECIMAL(8, 4),
    sortino_ratio DECIMAL(8, 4),
    calmar_ratio DECIMAL(8, 4),
    avg_trade_duration INTEGER,
    max_trade_duration INTEGER,
    avg_win DECIMAL(18, 8),
    avg_loss DECIMAL(18, 8),
    largest_win DECIMAL(18, 8),
    largest_loss DECIMAL(18, 8),
    var_95 DECIMAL(18, 8),
    cvar_95 DECIMAL(18, 8),
    market_correlation DECIMAL(5, 4),
    beta DECIMAL(8, 4),
    alpha DECIMAL(8, 4),
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    UNIQUE (strategy_id, date)
);

CREATE INDEX idx_strategy_metrics_strategy_date ON strategy_metrics (strategy_id, date DESC);
CREATE INDEX idx_strategy_metrics_performance ON strategy_metrics (total_pnl DESC, sharpe_ratio DESC);
CREATE INDEX idx_strategy_metrics_risk ON strategy_metrics (max_drawdown ASC, var_95 ASC);

-- ============================================================================
-- ORDERS (order management)
-- ============================================================================
CREATE TABLE orders (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    trade_id UUID REFERENCES trades(id) ON DELETE SET NULL,
    strategy_id UUID NOT NULL REFERENCES strategies(id) ON DELETE CASCADE,
    external_order_id VARCHAR(100) UNIQUE,
    client_order_id VARCHAR(100),
    symbol VARCHAR(20) NOT NULL,
    side VARCHAR(5) NOT NULL CHECK (side IN ('BUY', 'SELL')),
    type VARCHAR(20) NOT NULL CHECK (type IN ('MARKET', 'LIMIT', 'STOP_LOSS', 'TAKE_PROFIT', 'STOP_LIMIT')),
    quantity DECIMAL(18, 8) NOT NULL CHECK (quantity > 0),
    price DECIMAL(18, 8),
    stop_price DECIMAL(18, 8),
    filled_quantity DECIMAL(18, 8) DEFAULT 0,
    remaining_quantity DECIMAL(18, 8),
    status VARCHAR(20) DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'PARTIAL_FILLED', 'FILLED', 'CANCELLED', 'REJECTED')),
    time_in_force VARCHAR(5) DEFAULT 'GTC' CHECK (time_in_force IN ('GTC', 'IOC', 'FOK')),
    reduce_only BOOLEAN DEFAULT FALSE,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    submitted_at TIMESTAMP WITH TIME ZONE,
    filled_at TIMESTAMP WITH TIME ZONE,
    cancelled_at TIMESTAMP WITH TIME ZONE,
    avg_fill_price DECIMAL(18, 8),
    fees DECIMAL(18, 8) DEFAULT 0,
    error_message TEXT,
    retry_count INTEGER DEFAULT 0,
    metadata JSONB DEFAULT '{}'
);

CREATE INDEX idx_orders_strategy_symbol ON orders (strategy_id, symbol);
CREATE INDEX idx_orders_status ON orders (status, created_at DESC);
CREATE INDEX idx_orders_external_id ON orders (external_order_id) WHERE external_order_id IS NOT NULL;
CREATE INDEX idx_orders_pending ON orders (created_at ASC) WHERE status = 'PENDING';
-- Not in the seed: the foreign key orders.trade_id ... ON DELETE SET NULL needs an index,
-- or deleting one trade scans every order.
CREATE INDEX idx_orders_trade ON orders (trade_id) WHERE trade_id IS NOT NULL;

-- ============================================================================
-- BACKTESTS
-- ============================================================================
CREATE TABLE backtests (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    strategy_id UUID NOT NULL REFERENCES strategies(id) ON DELETE CASCADE,
    name VARCHAR(200) NOT NULL,
    description TEXT,
    symbol VARCHAR(20) NOT NULL,
    timeframe VARCHAR(5) NOT NULL,
    start_date TIMESTAMP WITH TIME ZONE NOT NULL,
    end_date TIMESTAMP WITH TIME ZONE NOT NULL,
    initial_capital DECIMAL(18, 8) NOT NULL,
    commission DECIMAL(8, 6) DEFAULT 0,
    slippage DECIMAL(8, 6) DEFAULT 0,
    total_return DECIMAL(8, 4),
    annualized_return DECIMAL(8, 4),
    volatility DECIMAL(8, 4),
    max_drawdown DECIMAL(8, 4),
    sharpe_ratio DECIMAL(8, 4),
    total_trades INTEGER,
    winning_trades INTEGER,
    win_rate DECIMAL(5, 4),
    profit_factor DECIMAL(8, 4),
    detailed_results JSONB,
    equity_curve JSONB,
    trade_list JSONB,
    execution_time_ms INTEGER,
    data_points_processed INTEGER,
    status VARCHAR(20) DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED')),
    error_message TEXT,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    started_at TIMESTAMP WITH TIME ZONE,
    completed_at TIMESTAMP WITH TIME ZONE
);

CREATE INDEX idx_backtests_strategy ON backtests (strategy_id, created_at DESC);
CREATE INDEX idx_backtests_performance ON backtests (sharpe_ratio DESC, total_return DESC) WHERE status = 'COMPLETED';
CREATE INDEX idx_backtests_symbol_timeframe ON backtests (symbol, timeframe);

-- ============================================================================
-- SYSTEM CONFIGURATION
-- ============================================================================
CREATE TABLE system_config (
    key VARCHAR(100) PRIMARY KEY,
    value JSONB NOT NULL,
    description TEXT,
    category VARCHAR(50) DEFAULT 'general',
    data_type VARCHAR(20) NOT NULL CHECK (data_type IN ('string', 'number', 'boolean', 'object', 'array')),
    is_sensitive BOOLEAN DEFAULT FALSE,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_by VARCHAR(100)
);

CREATE INDEX idx_system_config_category ON system_config (category);
