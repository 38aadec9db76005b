-- tradestore 0005: the market-data catalog, kept up to date by every ingest in the same
-- transaction, so listing what is stored never scans market_data.
CREATE TABLE market_data_catalog (
    symbol VARCHAR(20) NOT NULL,
    timeframe VARCHAR(5) NOT NULL,
    first_ts TIMESTAMP WITH TIME ZONE NOT NULL,
    last_ts TIMESTAMP WITH TIME ZONE NOT NULL,
    row_count BIGINT NOT NULL CHECK (row_count >= 0),
    -- bumped by every ingest that changed rows: cached ranges of an older version are stale
    version BIGINT NOT NULL DEFAULT 1,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    PRIMARY KEY (symbol, timeframe)
);

-- Recount one series from market_data (after rows were removed by retention or archive).
CREATE FUNCTION market_data_catalog_refresh(p_symbol TEXT, p_timeframe TEXT)
RETURNS VOID LANGUAGE sql AS $$
    DELETE FROM market_data_catalog WHERE symbol = p_symbol AND timeframe = p_timeframe;
    INSERT INTO market_data_catalog (symbol, timeframe, first_ts, last_ts, row_count)
    SELECT symbol, timeframe, min(timestamp), max(timestamp), count(*)
      FROM market_data WHERE symbol = p_symbol AND timeframe = p_timeframe
     GROUP BY symbol, timeframe;
$$;
