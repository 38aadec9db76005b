-- tradestore 0008: a backtest's large arrays, apart from its summary row so that listing
-- backtests never reads them. The equity curve is stored as packed little-endian arrays
-- (int64 Unix microseconds, float64 values): a 1,000,000-point curve is 16 MB that
-- writes and reads back as two numpy buffers. backtests.equity_curve (JSONB) keeps a
-- downsample of at most 500 points for display.
CREATE TABLE backtest_series (
    backtest_id UUID PRIMARY KEY REFERENCES backtests(id) ON DELETE CASCADE,
    points INTEGER NOT NULL CHECK (points >= 0),
    equity_time BYTEA NOT NULL,
    equity_value BYTEA NOT NULL,
    CONSTRAINT equity_arrays_match CHECK (
        octet_length(equity_time) = 8 * points AND octet_length(equity_value) = 8 * points)
);
