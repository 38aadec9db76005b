-- tradestore 0024: a column block says which candles of its period it holds with a bitmap
-- of slots instead of a column of timestamps. A period is 1440 candles of its timeframe
-- and timestamps lie on the timeframe's boundaries (ingest checks it), so candle k of a
-- period is at period_start + k * (period_end - period_start) / 1440: bit k of `slots`
-- (get_bit numbering: bit k is bit k % 8 of byte k / 8, least significant first) says
-- whether the block holds it. 180 bytes a block, next to nothing once compressed, where
-- the timestamps took 8 bytes a candle that lz4 could not shrink much and that every
-- read decompressed and sent.

-- The slots bitmap of the given candle offsets (each in 0..1439).
CREATE FUNCTION market_data_slot_bitmap(p_slots INTEGER[]) RETURNS BYTEA
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    bits BYTEA := decode(repeat('00', 180), 'hex');
    slot INTEGER;
BEGIN
    FOREACH slot IN ARRAY p_slots LOOP
        bits := set_bit(bits, slot, 1);
    END LOOP;
    RETURN bits;
END
$$;

-- The offset of a candle in its period, in candles of the timeframe.
CREATE FUNCTION market_data_slot(p_ts TIMESTAMPTZ, p_start TIMESTAMPTZ, p_end TIMESTAMPTZ)
RETURNS INTEGER LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ((extract(epoch FROM p_ts - p_start) * 1440)
            / extract(epoch FROM p_end - p_start))::integer
$$;

ALTER TABLE market_data_block ADD COLUMN slots BYTEA;
DO $$
BEGIN
    ALTER TABLE market_data_block ALTER COLUMN slots SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available: market_data_block.slots is compressed with pglz';
END
$$;
UPDATE market_data_block b
   SET slots = market_data_slot_bitmap(ARRAY(
           SELECT market_data_slot(TIMESTAMPTZ 'epoch' + market_data_int8_at(b.ts, i)
                                       * INTERVAL '1 microsecond',
                                   b.period_start, b.period_end)
             FROM generate_series(0, b.row_count - 1) AS i));

-- The functions that read or write `ts` go before it does.
DROP FUNCTION market_data_range(TEXT, TEXT, TEXT, TIMESTAMPTZ, TIMESTAMPTZ);
DROP VIEW market_data_all;
DROP FUNCTION market_data_block_rows(TEXT, TEXT, TEXT, TIMESTAMPTZ, TIMESTAMPTZ);
ALTER TABLE market_data_block ALTER COLUMN slots SET NOT NULL, DROP COLUMN ts;

-- The candles held in blocks of one series in [p_start, p_end), as rows. The subquery
-- (OFFSET 0: kept apart) decompresses each column of a block once, not once a candle;
-- candle i of a block is its i-th set slot.
CREATE FUNCTION market_data_block_rows(p_venue TEXT, p_symbol TEXT, p_timeframe TEXT,
                                       p_start TIMESTAMPTZ, p_end TIMESTAMPTZ)
RETURNS SETOF market_data_candle
LANGUAGE sql STABLE AS $$
    SELECT b.venue, b.symbol, b.timeframe, x.timestamp,
           market_data_int8_at(b.open, s.i) * 0.00000001,
           market_data_int8_at(b.high, s.i) * 0.00000001,
           market_data_int8_at(b.low, s.i) * 0.00000001,
           market_data_int8_at(b.close, s.i) * 0.00000001,
           market_data_int8_at(b.volume, s.i) * 0.00000001,
           nullif(market_data_int4_at(b.trades_count, s.i), -1),
           nullif(market_data_int8_at(b.vwap, s.i), -9223372036854775808) * 0.00000001,
           b.data_source[s.i + 1], nullif(b.data_quality_score[s.i + 1], -32768),
           TIMESTAMPTZ 'epoch'
               + nullif(b.created_at[s.i + 1], -9223372036854775808) * INTERVAL '1 microsecond'
      FROM (SELECT venue, symbol, timeframe, period_start, period_end,
                   slots || ''::bytea AS slots, open || ''::bytea AS open,
                   high || ''::bytea AS high, low || ''::bytea AS low,
                   close || ''::bytea AS close, volume || ''::bytea AS volume,
                   trades_count || ''::bytea AS trades_count, vwap || ''::bytea AS vwap,
                   data_source || '{}'::text[] AS data_source,
                   data_quality_score || '{}'::int2[] AS data_quality_score,
                   created_at || '{}'::int8[] AS created_at
              FROM market_data_block
             WHERE venue = p_venue AND symbol = p_symbol AND timeframe = p_timeframe
               AND period_start < p_end AND period_end > p_start
            OFFSET 0) b
     CROSS JOIN LATERAL (SELECT k.slot, (row_number() OVER (ORDER BY k.slot) - 1)::int AS i
                           FROM generate_series(0, 1439) AS k(slot)
                          WHERE get_bit(b.slots, k.slot) = 1) s
     CROSS JOIN LATERAL (SELECT b.period_start
                                + s.slot * extract(epoch FROM b.period_end - b.period_start)
                                  / 1440 * INTERVAL '1 second'
                                AS timestamp) x
     WHERE x.timestamp >= p_start AND x.timestamp < p_end
$$;

-- As in 0023, over the new market_data_block_rows.
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

CREATE VIEW market_data_all AS
SELECT m.venue, m.symbol, m.timeframe, m.timestamp, m.open, m.high, m.low, m.close,
       m.volume, m.trades_count, m.vwap, m.data_source, m.data_quality_score, m.created_at
  FROM market_data m
UNION ALL
SELECT u.*
  FROM market_data_block b
 CROSS JOIN LATERAL market_data_block_rows(b.venue, b.symbol, b.timeframe, b.period_start,
                                           b.period_end) u;

-- As in 0023, writing the slots bitmap instead of the timestamps.
CREATE OR REPLACE FUNCTION market_data_compact(p_venue TEXT, p_symbol TEXT,
                                               p_timeframe TEXT, p_start TIMESTAMPTZ,
                                               p_end TIMESTAMPTZ)
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
                                   row_count, first_ts, last_ts, slots, open, high, low,
                                   close, volume, trades_count, vwap, data_quality_score,
                                   created_at, data_source)
    SELECT p_venue, p_symbol, p_timeframe, p_start, p_end, count(*),
           min(timestamp), max(timestamp),
           market_data_slot_bitmap(array_agg(market_data_slot(timestamp, p_start, p_end))),
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
