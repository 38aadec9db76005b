-- A day of one-minute candles can sum to more volume than NUMERIC(18,8) holds (each
-- candle may be up to 10^10): the rollup batch then failed on every run. Rollup volumes
-- are unbounded NUMERIC, as TimescaleDB's continuous aggregates' sums already are.
ALTER TABLE market_data_rollup ALTER COLUMN volume TYPE NUMERIC;
