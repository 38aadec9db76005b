-- A series is (venue, symbol, timeframe): spot and perpetual data of one pair, or the same
-- pair on two exchanges, no longer collide. The market type is in the symbol (CCXT's
-- unified form: BTC/USDT spot, BTC/USDT:USDT perpetual, BTC/USDT:USDT-251226 dated;
-- dYdX's BTC-USD is a perpetual of venue dydx). Existing data is the seed's: venue dydx.
ALTER TABLE market_data ADD COLUMN venue VARCHAR(20) NOT NULL DEFAULT 'dydx';
ALTER TABLE market_data DROP CONSTRAINT market_data_pkey;
ALTER TABLE market_data ADD PRIMARY KEY (venue, symbol, timeframe, timestamp);
DROP INDEX idx_market_data_volume;
CREATE INDEX idx_market_data_volume ON market_data (venue, symbol, volume DESC) WHERE volume > 0;

ALTER TABLE market_data_catalog ADD COLUMN venue VARCHAR(20) NOT NULL DEFAULT 'dydx';
ALTER TABLE market_data_catalog DROP CONSTRAINT market_data_catalog_pkey;
ALTER TABLE market_data_catalog ADD PRIMARY KEY (venue, symbol, timeframe);

DROP FUNCTION market_data_catalog_refresh(TEXT, TEXT);
CREATE FUNCTION market_data_catalog_refresh(p_venue TEXT, p_symbol TEXT, p_timeframe TEXT)
RETURNS VOID LANGUAGE sql AS $$
    DELETE FROM market_data_catalog c
     WHERE c.venue = p_venue AND c.symbol = p_symbol AND c.timeframe = p_timeframe
       AND NOT EXISTS (SELECT 1 FROM market_data m WHERE m.venue = p_venue
                          AND m.symbol = p_symbol AND m.timeframe = p_timeframe);
    INSERT INTO market_data_catalog AS c (venue, symbol, timeframe, first_ts, last_ts, row_count)
    SELECT venue, symbol, timeframe, min(timestamp), max(timestamp), count(*)
      FROM market_data WHERE venue = p_venue AND symbol = p_symbol AND timeframe = p_timeframe
     GROUP BY venue, symbol, timeframe
    ON CONFLICT (venue, symbol, timeframe) DO UPDATE
       SET first_ts = EXCLUDED.first_ts, last_ts = EXCLUDED.last_ts,
           row_count = EXCLUDED.row_count,
           version = nextval('market_data_catalog_version_seq'), updated_at = now();
$$;

ALTER TABLE market_data_rollup ADD COLUMN venue VARCHAR(20) NOT NULL DEFAULT 'dydx';
ALTER TABLE market_data_rollup DROP CONSTRAINT market_data_rollup_pkey;
ALTER TABLE market_data_rollup ADD PRIMARY KEY (venue, symbol, timeframe, timestamp);

ALTER TABLE rollup_dirty ADD COLUMN venue VARCHAR(20) NOT NULL DEFAULT 'dydx';
ALTER TABLE rollup_dirty DROP CONSTRAINT rollup_dirty_pkey;
ALTER TABLE rollup_dirty ADD PRIMARY KEY (venue, symbol, day);

CREATE OR REPLACE FUNCTION rollup_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_dirty (venue, symbol, day)
    SELECT DISTINCT venue, symbol, (timestamp AT TIME ZONE 'UTC')::date FROM changed_rows
     WHERE timeframe = '1m'
     ORDER BY 1, 2, 3
    ON CONFLICT (venue, symbol, day) DO UPDATE SET marked_at = now();
    RETURN NULL;
END
$$;
