-- tradestore 0025: each value column of a block (open, high, low, close, volume,
-- trades_count, vwap) is stored with a frame of reference, so that a read decompresses
-- and sends 2.6x fewer bytes (docs/market-data.md, "Column blocks").
--
-- A column is a 10-byte header then one offset per candle:
--   byte 0: the width w of an offset in bytes (0, 1, 2, 4 or 8)
--   byte 1: a decimal exponent k (0..18)
--   bytes 2..9: a base, big-endian int8
--   then the offsets, w bytes each, big-endian
-- and value i is base + offset_i * 10^k, exact. A writer takes the column's minimum as the
-- base and the largest power of ten dividing every value's distance from it as 10^k, and
-- the narrowest width that holds the largest offset as a non-negative signed number (so
-- w < 8 offsets read the same signed or not). A column of one value (trades or vwap
-- unknown in the whole block) is its header alone (w = 0). Where the values span more
-- than int8 (a vwap sentinel beside real values), base is 0, k is 0 and the offsets are
-- the values (w = 8).
-- Prices of 2 decimals at a 1e8 scale are multiples of 10^6 apart: a day of them fits
-- 4-byte offsets where the values took 8.

-- The greatest common divisor of int8 values (gcd(0, x) = x; 0 for none or all zeros).
CREATE AGGREGATE market_data_gcd(INT8) (SFUNC = gcd, STYPE = INT8, INITCOND = '0');

-- 10^k for k in 0..18, exact.
CREATE FUNCTION market_data_power_of_ten(k INTEGER) RETURNS INT8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (ARRAY[1, 10, 100, 1000, 10000, 100000, 1000000,
                  10000000, 100000000, 1000000000, 10000000000, 100000000000,
                  1000000000000, 10000000000000, 100000000000000, 1000000000000000,
                  10000000000000000, 100000000000000000, 1000000000000000000]::int8[])[k + 1]
$$;

-- A column of int8 values (in candle order) in the layout above.
CREATE FUNCTION market_data_pack(p_values INT8[]) RETURNS BYTEA
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    lo INT8;
    hi INT8;
    divisor INT8;
    k INTEGER := 0;
    w INTEGER;
    span INT8;
    body BYTEA;
BEGIN
    SELECT min(v), max(v) INTO lo, hi FROM unnest(p_values) AS v;
    IF hi::numeric - lo::numeric > 9223372036854775807 THEN
        lo := 0;  -- offsets are the values
        w := 8;
    ELSE
        divisor := (SELECT market_data_gcd(v - lo) FROM unnest(p_values) AS v);
        WHILE k < 18 AND divisor <> 0 AND divisor % market_data_power_of_ten(k + 1) = 0 LOOP
            k := k + 1;
        END LOOP;
        span := (hi - lo) / market_data_power_of_ten(k);
        w := CASE WHEN span = 0 THEN 0 WHEN span < 128 THEN 1 WHEN span < 32768 THEN 2
                  WHEN span < 2147483648 THEN 4 ELSE 8 END;
    END IF;
    SELECT string_agg(substring(int8send((v - lo) / market_data_power_of_ten(k)) FROM 9 - w),
                      ''::bytea ORDER BY i)
      INTO body
      FROM unnest(p_values) WITH ORDINALITY AS u(v, i)
     WHERE w > 0;
    RETURN set_byte(set_byte('\x0000'::bytea, 0, w), 1, k) || int8send(lo)
           || coalesce(body, ''::bytea);
END
$$;

-- Element i (from 0) of a column in that layout.
CREATE FUNCTION market_data_value_at(b BYTEA, i INTEGER) RETURNS INT8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ('x' || encode(substring(b FROM 3 FOR 8), 'hex'))::bit(64)::int8
           + ('x' || lpad(encode(substring(b FROM 11 + i * get_byte(b, 0) FOR get_byte(b, 0)),
                                 'hex'), 16, '0'))::bit(64)::int8
             * market_data_power_of_ten(get_byte(b, 1))
$$;

-- Blocks written before: every value column into the new layout.
UPDATE market_data_block b
   SET open = market_data_pack(ARRAY(SELECT market_data_int8_at(b.open, i)
                                       FROM generate_series(0, b.row_count - 1) AS i
                                      ORDER BY i)),
       high = market_data_pack(ARRAY(SELECT market_data_int8_at(b.high, i)
                                       FROM generate_series(0, b.row_count - 1) AS i
                                      ORDER BY i)),
       low = market_data_pack(ARRAY(SELECT market_data_int8_at(b.low, i)
                                      FROM generate_series(0, b.row_count - 1) AS i
                                     ORDER BY i)),
       close = market_data_pack(ARRAY(SELECT market_data_int8_at(b.close, i)
                                        FROM generate_series(0, b.row_count - 1) AS i
                                       ORDER BY i)),
       volume = market_data_pack(ARRAY(SELECT market_data_int8_at(b.volume, i)
                                         FROM generate_series(0, b.row_count - 1) AS i
                                        ORDER BY i)),
       trades_count = market_data_pack(ARRAY(SELECT market_data_int4_at(b.trades_count, i)
                                               FROM generate_series(0, b.row_count - 1) AS i
                                              ORDER BY i)),
       vwap = market_data_pack(ARRAY(SELECT market_data_int8_at(b.vwap, i)
                                       FROM generate_series(0, b.row_count - 1) AS i
                                      ORDER BY i));

-- The readers of 0023/0024 (market_data_block_rows, and through it market_data_range,
-- market_data_all and market_data_expand) read the new layout.
CREATE OR REPLACE FUNCTION market_data_int8_at(b BYTEA, i INTEGER) RETURNS INT8
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT market_data_value_at(b, i)
$$;
CREATE OR REPLACE FUNCTION market_data_int4_at(b BYTEA, i INTEGER) RETURNS INT4
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT market_data_value_at(b, i)::int4
$$;

-- As in 0024, writing the value columns in the new layout.
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
