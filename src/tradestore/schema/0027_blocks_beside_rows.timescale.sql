-- tradestore 0027 (TimescaleDB): column blocks beside the rows (docs/market-data.md,
-- "Column blocks"). The continuous aggregates read market_data, so on TimescaleDB the
-- rows of a closed period stay (compressed by TimescaleDB) and its block is a column copy
-- of them that reads fetch instead:
--   market_data_compact copies a period's rows into its block (they stay);
--   market_data_expand, called before a correction, deletes the copy (the rows are there)
--   what SQL reads (market_data_range, market_data_all) and the catalog's counts are the
--   rows alone, and the catalog's compacted_until still says where the blocks end.
-- Until this migration nothing was packed on TimescaleDB: market_data_block is empty.

-- Before a write to [p_start, p_end): the series' blocks overlapping it are deleted (their
-- rows are there). Returns the candles moved back into rows, as on plain PostgreSQL: none.
CREATE OR REPLACE FUNCTION market_data_expand(p_venue TEXT, p_symbol TEXT, p_timeframe TEXT,
                                              p_start TIMESTAMPTZ, p_end TIMESTAMPTZ)
RETURNS INTEGER LANGUAGE sql AS $$
    DELETE FROM market_data_block b
     WHERE b.venue = p_venue AND b.symbol = p_symbol AND b.timeframe = p_timeframe
       AND b.period_start < p_end AND b.period_end > p_start;
    SELECT 0;
$$;

-- Planned for each call's values (plan_cache_mode): a generic plan of the SELECT from
-- market_data cannot exclude chunks at planning and took seconds a period over 700
-- compressed chunks.
CREATE OR REPLACE FUNCTION market_data_compact(p_venue TEXT, p_symbol TEXT,
                                               p_timeframe TEXT, p_start TIMESTAMPTZ,
                                               p_end TIMESTAMPTZ)
RETURNS INTEGER LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
DECLARE
    n INTEGER;
BEGIN
    PERFORM market_data_expand(p_venue, p_symbol, p_timeframe, p_start, p_end);
    INSERT INTO market_data_block (venue, symbol, timeframe, period_start, period_end,
                                   row_count, first_ts, last_ts, slots, open, high, low,
                                   close, volume, trades_count, vwap, data_quality_score,
                                   created_at, data_source)
    SELECT p_venue, p_symbol, p_timeframe, p_start, p_end, count(*),
           min(timestamp), max(timestamp),
           market_data_slot_bitmap(array_agg(market_data_slot(timestamp, p_start, p_end))),
           market_data_pack(array_agg((open * 100000000)::int8 ORDER BY timestamp)),
           market_data_pack(array_agg((high * 100000000)::int8 ORDER BY timestamp)),
           market_data_pack(array_agg((low * 100000000)::int8 ORDER BY timestamp)),
           market_data_pack(array_agg((close * 100000000)::int8 ORDER BY timestamp)),
           market_data_pack(array_agg((volume * 100000000)::int8 ORDER BY timestamp)),
           market_data_pack(array_agg(coalesce(trades_count, -1)::int8 ORDER BY timestamp)),
           market_data_pack(array_agg(coalesce((vwap * 100000000)::int8,
                                               -9223372036854775808) ORDER BY timestamp)),
           array_agg(coalesce(data_quality_score, -32768)::int2 ORDER BY timestamp),
           array_agg(coalesce((extract(epoch FROM created_at) * 1000000)::int8,
                              -9223372036854775808) ORDER BY timestamp),
           array_agg(data_source::text ORDER BY timestamp)
      FROM market_data m
     WHERE m.venue = p_venue AND m.symbol = p_symbol AND m.timeframe = p_timeframe
       AND m.timestamp >= p_start AND m.timestamp < p_end
    HAVING count(*) > 0;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        RETURN 0;
    END IF;
    UPDATE market_data_catalog c
       SET compacted_until = greatest(coalesce(c.compacted_until, p_end), p_end)
     WHERE c.venue = p_venue AND c.symbol = p_symbol AND c.timeframe = p_timeframe;
    SELECT row_count INTO n FROM market_data_block b
     WHERE b.venue = p_venue AND b.symbol = p_symbol AND b.timeframe = p_timeframe
       AND b.period_start = p_start;
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION market_data_range(p_venue TEXT, p_symbol TEXT, p_timeframe TEXT,
                                             p_start TIMESTAMPTZ, p_end TIMESTAMPTZ)
RETURNS SETOF market_data_candle
LANGUAGE sql STABLE AS $$
    SELECT m.venue, m.symbol, m.timeframe, m.timestamp, m.open, m.high, m.low, m.close,
           m.volume, m.trades_count, m.vwap, m.data_source, m.data_quality_score,
           m.created_at
      FROM market_data m
     WHERE m.venue = p_venue AND m.symbol = p_symbol AND m.timeframe = p_timeframe
       AND m.timestamp >= p_start AND m.timestamp < p_end
$$;

DROP VIEW market_data_all;
CREATE VIEW market_data_all AS
SELECT m.venue, m.symbol, m.timeframe, m.timestamp, m.open, m.high, m.low, m.close,
       m.volume, m.trades_count, m.vwap, m.data_source, m.data_quality_score, m.created_at
  FROM market_data m;

-- The catalog counts the rows; compacted_until is where the series' blocks end.
CREATE OR REPLACE FUNCTION market_data_catalog_refresh(p_venue TEXT, p_symbol TEXT,
                                                       p_timeframe TEXT)
RETURNS VOID LANGUAGE sql AS $$
    DELETE FROM market_data_catalog c
     WHERE c.venue = p_venue AND c.symbol = p_symbol AND c.timeframe = p_timeframe
       AND NOT EXISTS (SELECT 1 FROM market_data m WHERE m.venue = p_venue
                          AND m.symbol = p_symbol AND m.timeframe = p_timeframe);
    INSERT INTO market_data_catalog AS c (venue, symbol, timeframe, first_ts, last_ts,
                                          row_count, compacted_until)
    SELECT p_venue, p_symbol, p_timeframe, min(timestamp), max(timestamp), count(*),
           (SELECT max(period_end) FROM market_data_block b WHERE b.venue = p_venue
               AND b.symbol = p_symbol AND b.timeframe = p_timeframe)
      FROM market_data WHERE venue = p_venue AND symbol = p_symbol
       AND timeframe = p_timeframe
    HAVING count(*) > 0
    ON CONFLICT (venue, symbol, timeframe) DO UPDATE
       SET first_ts = EXCLUDED.first_ts, last_ts = EXCLUDED.last_ts,
           row_count = EXCLUDED.row_count, compacted_until = EXCLUDED.compacted_until,
           version = nextval('market_data_catalog_version_seq'), updated_at = now();
$$;
