-- tradestore 0023: closed candle history as column blocks (docs/market-data.md, "Column
-- blocks"). One row per series and period holds the period's candles as columns, in time
-- order: timestamps as epoch microseconds, prices, volume and vwap as int8 of value * 1e8
-- (exact for NUMERIC(18,8)), with sentinels for unknown values (trades -1, vwap, score
-- and creation time the int8/int2 minimum) so that every element has the same width.
-- The columns a read sends are BYTEA of big-endian values (int8send/int4send, one after
-- the other): binary COPY sends them as they are stored, which numpy reads as one array
-- (an int8[] is sent element by element, ~12x slower on the server). SQL reads them with
-- market_data_int8_at / market_data_int4_at, or market_data_range and market_data_all.
-- Rows of a period live either in market_data or in its block, never in both:
-- `market_data_compact` moves them into a block, `market_data_expand` back into rows (a
-- correction of a compacted period expands it first).
CREATE TABLE market_data_block (
    venue VARCHAR(20) NOT NULL,
    symbol VARCHAR(20) NOT NULL,
    timeframe VARCHAR(5) NOT NULL,
    period_start TIMESTAMP WITH TIME ZONE NOT NULL,
    period_end TIMESTAMP WITH TIME ZONE NOT NULL,
    row_count INTEGER NOT NULL CHECK (row_count > 0),
    first_ts TIMESTAMP WITH TIME ZONE NOT NULL,
    last_ts TIMESTAMP WITH TIME ZONE NOT NULL,
    ts BYTEA NOT NULL,
    open BYTEA NOT NULL,
    high BYTEA NOT NULL,
    low BYTEA NOT NULL,
    close BYTEA NOT NULL,
    volume BYTEA NOT NULL,
    trades_count BYTEA NOT NULL,
    vwap BYTEA NOT NULL,
    data_quality_score INT2[] NOT NULL,
    created_at INT8[] NOT NULL,
    data_source TEXT[] NOT NULL,
    compacted_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
    PRIMARY KEY (venue, symbol, timeframe, period_start),
    CHECK (period_start < period_end AND first_ts >= period_start AND last_ts < period_end)
);

-- lz4 where the server has it (Debian's and the official builds do); pglz otherwise
DO $$
DECLARE col TEXT;
BEGIN
    FOREACH col IN ARRAY ARRAY['ts', 'open', 'high', 'low', 'close', 'volume',
                               'trades_count', 'vwap', 'data_quality_score', 'created_at',
                               'data_source'] LOOP
        EXECUTE format('ALTER TABLE market_data_block ALTER COLUMN %I SET COMPRESSION lz4', col);
    END LOOP;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available: market_data_block is compressed with pglz';
END
$$;

-- Where a series' blocks end (an upper bound: periods before it may be blocks); NULL when
-- it has none. Reads look at blocks only for ranges that start before it.
ALTER TABLE market_data_catalog ADD COLUMN compacted_until TIMESTAMP WITH TIME ZONE;

-- A candle as market_data's columns: what the functions below return.
CREATE TYPE market_data_candle AS (
    venue VARCHAR, symbol VARCHAR, timeframe VARCHAR, "timestamp" TIMESTAMPTZ,
    open NUMERIC, high NUMERIC, low NUMERIC, close NUMERIC, volume NUMERIC,
    trades_count INTEGER, vwap NUMERIC, data_source VARCHAR, data_quality_score SMALLINT,
    created_at TIMESTAMPTZ
);

-- Element i (from 0) of a BYTEA column of big-endian int8 / int4 values.
CREATE FUNCTION market_data_int8_at(b BYTEA, i INTEGER) RETURNS INT8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ('x' || encode(substring(b FROM i * 8 + 1 FOR 8), 'hex'))::bit(64)::int8
$$;
CREATE FUNCTION market_data_int4_at(b BYTEA, i INTEGER) RETURNS INT4
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ('x' || encode(substring(b FROM i * 4 + 1 FOR 4), 'hex'))::bit(32)::int4
$$;

-- The candles held in blocks of one series in [p_start, p_end), as rows. The subquery
-- (OFFSET 0: kept apart) decompresses each column of a block once, not once a candle.
CREATE FUNCTION market_data_block_rows(p_venue TEXT, p_symbol TEXT, p_timeframe TEXT,
                                       p_start TIMESTAMPTZ, p_end TIMESTAMPTZ)
RETURNS SETOF market_data_candle
LANGUAGE sql STABLE AS $$
    SELECT b.venue, b.symbol, b.timeframe, x.timestamp,
           market_data_int8_at(b.open, i) * 0.00000001,
           market_data_int8_at(b.high, i) * 0.00000001,
           market_data_int8_at(b.low, i) * 0.00000001,
           market_data_int8_at(b.close, i) * 0.00000001,
           market_data_int8_at(b.volume, i) * 0.00000001,
           nullif(market_data_int4_at(b.trades_count, i), -1),
           nullif(market_data_int8_at(b.vwap, i), -9223372036854775808) * 0.00000001,
           b.data_source[i + 1], nullif(b.data_quality_score[i + 1], -32768),
           TIMESTAMPTZ 'epoch'
               + nullif(b.created_at[i + 1], -9223372036854775808) * INTERVAL '1 microsecond'
      FROM (SELECT venue, symbol, timeframe, row_count, ts || ''::bytea AS ts,
                   open || ''::bytea AS open, high || ''::bytea AS high,
                   low || ''::bytea AS low, close || ''::bytea AS close,
                   volume || ''::bytea AS volume, trades_count || ''::bytea AS trades_count,
                   vwap || ''::bytea AS vwap, data_source || '{}'::text[] AS data_source,
                   data_quality_score || '{}'::int2[] AS data_quality_score,
                   created_at || '{}'::int8[] AS created_at
              FROM market_data_block
             WHERE venue = p_venue AND symbol = p_symbol AND timeframe = p_timeframe
               AND period_start < p_end AND period_end > p_start
            OFFSET 0) b
     CROSS JOIN LATERAL generate_series(0, b.row_count - 1) AS i
     CROSS JOIN LATERAL (SELECT TIMESTAMPTZ 'epoch'
                                + market_data_int8_at(b.ts, i) * INTERVAL '1 microsecond'
                                AS timestamp) x
     WHERE x.timestamp >= p_start AND x.timestamp < p_end
$$;

-- The candles of one series in [p_start, p_end), rows and blocks alike, as market_data's
-- columns (unordered). What SQL that reads candles uses: resampling, quality, export.
CREATE FUNCTION market_data_range(p_venue TEXT, p_symbol TEXT, p_timeframe TEXT,
                                  p_start TIMESTAMPTZ, p_end TIMESTAMPTZ)
RETURNS SETOF market_data_candle
LANGUAGE sql STABLE AS $$
    SELECT m.venue, m.symbol, m.timeframe, m.timestamp, m.open, m.high, m.low, m.close,
           m.volume, m.trades_count, m.vwap, m.data_source, m.data_quality_score,
           m.created_at
      FROM market_data m
     WHERE m.venue = p_venue AND m.symbol = p_symbol AND m.timeframe = p_timeframe
       AND m.timestamp >= p_start AND m.timestamp < p_end
    UNION ALL
    SELECT u.venue, u.symbol, u.timeframe, u.timestamp, u.open, u.high, u.low, u.close,
           u.volume, u.trades_count, u.vwap, u.data_source, u.data_quality_score,
           u.created_at
      FROM market_data_block_rows(p_venue, p_symbol, p_timeframe, p_start, p_end) u
$$;

-- Every stored candle, rows and blocks, for ad-hoc SQL (filter by series: the blocks of a
-- series are read whole).
CREATE VIEW market_data_all AS
SELECT m.venue, m.symbol, m.timeframe, m.timestamp, m.open, m.high, m.low, m.close,
       m.volume, m.trades_count, m.vwap, m.data_source, m.data_quality_score, m.created_at
  FROM market_data m
UNION ALL
SELECT u.*
  FROM market_data_block b
 CROSS JOIN LATERAL market_data_block_rows(b.venue, b.symbol, b.timeframe, b.period_start,
                                           b.period_end) u;

-- Move the rows of one series in [p_start, p_end) (one whole period) into its block. A
-- block the period already has is expanded first, so nothing is left out. The caller
-- holds the series' ingest lock. Returns the number of candles compacted.
CREATE FUNCTION market_data_compact(p_venue TEXT, p_symbol TEXT, p_timeframe TEXT,
                                    p_start TIMESTAMPTZ, p_end TIMESTAMPTZ)
RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    n INTEGER;
BEGIN
    PERFORM market_data_expand(p_venue, p_symbol, p_timeframe, p_start, p_end);
    WITH moved AS (
        DELETE FROM market_data m
         WHERE m.venue = p_venue AND m.symbol = p_symbol AND m.timeframe = p_timeframe
           AND m.timestamp >= p_start AND m.timestamp < p_end
        RETURNING m.*
    )
    INSERT INTO market_data_block (venue, symbol, timeframe, period_start, period_end,
                                   row_count, first_ts, last_ts, ts, open, high, low, close,
                                   volume, trades_count, vwap, data_quality_score,
                                   created_at, data_source)
    SELECT p_venue, p_symbol, p_timeframe, p_start, p_end, count(*),
           min(timestamp), max(timestamp),
           string_agg(int8send((extract(epoch FROM timestamp) * 1000000)::int8), ''::bytea
                      ORDER BY timestamp),
           string_agg(int8send((open * 100000000)::int8), ''::bytea ORDER BY timestamp),
           string_agg(int8send((high * 100000000)::int8), ''::bytea ORDER BY timestamp),
           string_agg(int8send((low * 100000000)::int8), ''::bytea ORDER BY timestamp),
           string_agg(int8send((close * 100000000)::int8), ''::bytea ORDER BY timestamp),
           string_agg(int8send((volume * 100000000)::int8), ''::bytea ORDER BY timestamp),
           string_agg(int4send(coalesce(trades_count, -1)), ''::bytea ORDER BY timestamp),
           string_agg(int8send(coalesce((vwap * 100000000)::int8, -9223372036854775808)),
                      ''::bytea ORDER BY timestamp),
           array_agg(coalesce(data_quality_score, -32768)::int2 ORDER BY timestamp),
           array_agg(coalesce((extract(epoch FROM created_at) * 1000000)::int8,
                              -9223372036854775808) ORDER BY timestamp),
           array_agg(data_source::text ORDER BY timestamp)
      FROM moved
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

-- Move the candles of every block of one series that overlaps [p_start, p_end) back into
-- market_data rows (before a correction, deletion or rescore of that time). The caller
-- holds the series' ingest lock; native partitions of those times exist (their rows were
-- there). Returns the number of candles expanded.
CREATE FUNCTION market_data_expand(p_venue TEXT, p_symbol TEXT, p_timeframe TEXT,
                                   p_start TIMESTAMPTZ, p_end TIMESTAMPTZ)
RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    n INTEGER;
    first_start TIMESTAMPTZ;
    last_end TIMESTAMPTZ;
BEGIN
    SELECT min(period_start), max(period_end) INTO first_start, last_end
      FROM market_data_block b
     WHERE b.venue = p_venue AND b.symbol = p_symbol AND b.timeframe = p_timeframe
       AND b.period_start < p_end AND b.period_end > p_start;
    IF first_start IS NULL THEN
        RETURN 0;
    END IF;
    INSERT INTO market_data (venue, symbol, timeframe, timestamp, open, high, low, close,
                             volume, trades_count, vwap, data_source, data_quality_score,
                             created_at)
    SELECT u.venue, u.symbol, u.timeframe, u.timestamp, u.open, u.high, u.low, u.close,
           u.volume, u.trades_count, u.vwap, u.data_source, u.data_quality_score,
           u.created_at
      FROM market_data_block_rows(p_venue, p_symbol, p_timeframe, first_start, last_end) u;
    GET DIAGNOSTICS n = ROW_COUNT;
    DELETE FROM market_data_block b
     WHERE b.venue = p_venue AND b.symbol = p_symbol AND b.timeframe = p_timeframe
       AND b.period_start < p_end AND b.period_end > p_start;
    RETURN n;
END
$$;

-- The catalog counts blocks too.
CREATE OR REPLACE FUNCTION market_data_catalog_refresh(p_venue TEXT, p_symbol TEXT,
                                                       p_timeframe TEXT)
RETURNS VOID LANGUAGE sql AS $$
    DELETE FROM market_data_catalog c
     WHERE c.venue = p_venue AND c.symbol = p_symbol AND c.timeframe = p_timeframe
       AND NOT EXISTS (SELECT 1 FROM market_data m WHERE m.venue = p_venue
                          AND m.symbol = p_symbol AND m.timeframe = p_timeframe)
       AND NOT EXISTS (SELECT 1 FROM market_data_block b WHERE b.venue = p_venue
                          AND b.symbol = p_symbol AND b.timeframe = p_timeframe);
    INSERT INTO market_data_catalog AS c (venue, symbol, timeframe, first_ts, last_ts,
                                          row_count, compacted_until)
    SELECT p_venue, p_symbol, p_timeframe, min(first_ts), max(last_ts), sum(n),
           max(compacted_until)
      FROM (SELECT min(timestamp) AS first_ts, max(timestamp) AS last_ts, count(*) AS n,
                   NULL::timestamptz AS compacted_until
              FROM market_data WHERE venue = p_venue AND symbol = p_symbol
               AND timeframe = p_timeframe
            UNION ALL
            SELECT min(first_ts), max(last_ts), sum(row_count), max(period_end)
              FROM market_data_block WHERE venue = p_venue AND symbol = p_symbol
               AND timeframe = p_timeframe) parts
    HAVING sum(n) > 0
    ON CONFLICT (venue, symbol, timeframe) DO UPDATE
       SET first_ts = EXCLUDED.first_ts, last_ts = EXCLUDED.last_ts,
           row_count = EXCLUDED.row_count, compacted_until = EXCLUDED.compacted_until,
           version = nextval('market_data_catalog_version_seq'), updated_at = now();
$$;
