-- The seed's partial (venue, symbol, volume DESC) index on market_data served no query of
-- tradestore (none orders candles by volume) and cost as much as the primary key: about
-- 40 bytes per candle and its share of every ingest.
DROP INDEX IF EXISTS idx_market_data_volume;
