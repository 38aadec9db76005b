-- tradestore:no-transaction
-- tradestore 0029 (TimescaleDB): rollups in market_data_rollup and closed periods in
-- column blocks alone, as on plain PostgreSQL (docs/market-data.md, "Column blocks").
-- Continuous aggregates read only the hypertable's rows, so until now a packed period kept
-- its rows beside its block (migration 0027): 112 bytes a candle instead of 17, and an
-- ingest of history wrote everything twice. Now:
--   the aggregates' buckets (and what migration 0020 kept below the oldest raw chunk) are
--   copied into market_data_rollup, which `maintain` recomputes by dirty UTC day from rows
--   and blocks (marketdata/rollups.py), and the aggregates are dropped;
--   every day that has 1m rows is marked dirty, so the first refresh recomputes it;
--   the rows of packed periods are deleted (their blocks hold the same candles), and
--   compaction, expansion and the SQL reads are plain PostgreSQL's (migrations 0023-0028).
-- A DELETE trigger with a transition table is not given the rows that TimescaleDB deletes
-- from compressed chunks, so deletes mark their days from a row trigger; inserts and
-- updates keep plain PostgreSQL's statement triggers.
-- Each statement is idempotent: a migration interrupted part way can run again.
CREATE TABLE IF NOT EXISTS market_data_rollup (
    venue VARCHAR(20) NOT NULL,
    symbol VARCHAR(20) NOT NULL,
    timeframe VARCHAR(5) NOT NULL CHECK (timeframe IN ('5m', '15m', '30m', '1h', '4h', '1d')),
    timestamp TIMESTAMP WITH TIME ZONE NOT NULL,
    open DECIMAL(18, 8) NOT NULL,
    high DECIMAL(18, 8) NOT NULL,
    low DECIMAL(18, 8) NOT NULL,
    close DECIMAL(18, 8) NOT NULL,
    volume NUMERIC NOT NULL,
    trades_count INTEGER,
    vwap DECIMAL(18, 8),
    PRIMARY KEY (venue, symbol, timeframe, timestamp)
);
-- tradestore:statement
-- UTC days of one-minute data changed since they were last rolled up.
CREATE TABLE IF NOT EXISTS rollup_dirty (
    venue VARCHAR(20) NOT NULL,
    symbol VARCHAR(20) NOT NULL,
    day DATE NOT NULL,
    marked_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    PRIMARY KEY (venue, symbol, day)
);
-- tradestore:statement
CREATE TABLE IF NOT EXISTS rollup_state (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    last_refresh_at TIMESTAMP WITH TIME ZONE
);
-- tradestore:statement
INSERT INTO rollup_state (id) VALUES (TRUE) ON CONFLICT DO NOTHING;
-- tradestore:statement
-- The scheduler may be refreshing an aggregate (as in migration 0020): unschedule the
-- refresh jobs, let a run under way finish, and retry a drop that meets one ending.
SELECT alter_job(job_id, scheduled => FALSE)
  FROM timescaledb_information.jobs
 WHERE proc_name = 'policy_refresh_continuous_aggregate';
-- tradestore:statement
DO $$
DECLARE
    waited INT := 0;
BEGIN
    WHILE waited < 120 AND EXISTS (
        SELECT 1 FROM timescaledb_information.job_stats s
          JOIN timescaledb_information.jobs j ON j.job_id = s.job_id
         WHERE j.proc_name = 'policy_refresh_continuous_aggregate'
           AND s.job_status = 'Running') LOOP
        PERFORM pg_sleep(0.25);
        waited := waited + 1;
    END LOOP;
END
$$;
-- tradestore:statement
-- One statement: each aggregate is copied and dropped together, or neither.
DO $$
DECLARE
    tf TEXT;
    view_name TEXT;
    attempt INT;
BEGIN
    FOREACH tf IN ARRAY ARRAY['5m', '15m', '30m', '1h', '4h', '1d'] LOOP
        view_name := 'market_data_' || tf;
        CONTINUE WHEN to_regclass(view_name) IS NULL;
        EXECUTE format(
            'INSERT INTO market_data_rollup (venue, symbol, timeframe, timestamp, open, high,'
            ' low, close, volume, trades_count, vwap)'
            ' SELECT venue, symbol, %L, bucket, open, high, low, close, volume, trades_count,'
            ' vwap FROM %I ON CONFLICT DO NOTHING', tf, view_name);
        FOR attempt IN 1..40 LOOP
            BEGIN
                EXECUTE format('DROP MATERIALIZED VIEW %I', view_name);
                EXIT;
            EXCEPTION WHEN internal_error OR lock_not_available OR deadlock_detected THEN
                IF attempt = 40 THEN
                    RAISE;
                END IF;
                PERFORM pg_sleep(0.25);
            END;
        END LOOP;
    END LOOP;
    IF to_regclass('market_data_rollup_kept') IS NOT NULL THEN
        INSERT INTO market_data_rollup (venue, symbol, timeframe, timestamp, open, high, low,
                                        close, volume, trades_count, vwap)
        SELECT venue, symbol, timeframe, timestamp, open, high, low, close, volume,
               trades_count, vwap
          FROM market_data_rollup_kept
        ON CONFLICT DO NOTHING;
        DROP TABLE market_data_rollup_kept;
    END IF;
END
$$;
-- tradestore:statement
-- The aggregates were refreshed on read and by policy: recompute every day that has raw
-- candles, so the table holds exactly what a refresh computes (buckets whose raw candles
-- retention dropped keep what the aggregates had).
INSERT INTO rollup_dirty (venue, symbol, day)
SELECT DISTINCT venue, symbol, (timestamp AT TIME ZONE 'UTC')::date
  FROM market_data WHERE timeframe = '1m'
ON CONFLICT DO NOTHING;
-- tradestore:statement
-- A packed period's rows are its block's candles (migration 0027): they go. Rows in
-- compressed chunks are decompressed to be deleted, beyond TimescaleDB's default limit of
-- a transaction.
DO $$
BEGIN
    PERFORM set_config('timescaledb.max_tuples_decompressed_per_dml_transaction', '0', true);
    DELETE FROM market_data m
     USING market_data_block b
     WHERE m.venue = b.venue AND m.symbol = b.symbol AND m.timeframe = b.timeframe
       AND m.timestamp >= b.period_start AND m.timestamp < b.period_end;
END
$$;
-- tradestore:statement
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
-- tradestore:statement
-- A deleted 1m row marks its day (and locks the marker until the delete commits, as the
-- statement triggers do: a refresh skips it meanwhile); the day's other rows only lock
-- it again: ON CONFLICT DO UPDATE locks the row even where its WHERE is false, and
-- marked_at = now() since the first of them.
CREATE OR REPLACE FUNCTION rollup_mark_deleted_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_dirty (venue, symbol, day)
    VALUES (OLD.venue, OLD.symbol, (OLD.timestamp AT TIME ZONE 'UTC')::date)
    ON CONFLICT (venue, symbol, day) DO UPDATE SET marked_at = now()
     WHERE rollup_dirty.marked_at <> now();
    RETURN NULL;
END
$$;
-- tradestore:statement
DROP TRIGGER IF EXISTS rollup_dirty_insert ON market_data;
-- tradestore:statement
CREATE TRIGGER rollup_dirty_insert AFTER INSERT ON market_data
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION rollup_mark_dirty();
-- tradestore:statement
DROP TRIGGER IF EXISTS rollup_dirty_update ON market_data;
-- tradestore:statement
CREATE TRIGGER rollup_dirty_update AFTER UPDATE ON market_data
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION rollup_mark_dirty();
-- tradestore:statement
DROP TRIGGER IF EXISTS rollup_dirty_delete ON market_data;
-- tradestore:statement
CREATE TRIGGER rollup_dirty_delete AFTER DELETE ON market_data
    FOR EACH ROW WHEN (OLD.timeframe = '1m') EXECUTE FUNCTION rollup_mark_deleted_dirty();
-- tradestore:statement
-- Before a write to [p_start, p_end) of a series: its blocks overlapping it move back into
-- rows (migration 0023); how many candles moved.
CREATE OR REPLACE FUNCTION market_data_expand(p_venue TEXT, p_symbol TEXT, p_timeframe TEXT,
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
-- tradestore:statement
-- A period's rows move into its block (migrations 0024, 0025). Planned for each call's
-- values (plan_cache_mode): a generic plan of the DELETE from market_data cannot exclude
-- chunks at planning (migration 0027).
CREATE OR REPLACE FUNCTION market_data_compact(p_venue TEXT, p_symbol TEXT,
                                               p_timeframe TEXT, p_start TIMESTAMPTZ,
                                               p_end TIMESTAMPTZ)
RETURNS INTEGER LANGUAGE plpgsql SET plan_cache_mode = force_custom_plan AS $$
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
-- tradestore:statement
-- A series' candles in [p_start, p_end): its rows and its blocks' (migration 0024).
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
    UNION ALL
    SELECT u.venue, u.symbol, u.timeframe, u.timestamp, u.open, u.high, u.low, u.close,
           u.volume, u.trades_count, u.vwap, u.data_source, u.data_quality_score,
           u.created_at
      FROM market_data_block_rows(p_venue, p_symbol, p_timeframe, p_start, p_end) u
$$;
-- tradestore:statement
DROP VIEW IF EXISTS market_data_all;
-- tradestore:statement
CREATE VIEW market_data_all AS
SELECT m.venue, m.symbol, m.timeframe, m.timestamp, m.open, m.high, m.low, m.close,
       m.volume, m.trades_count, m.vwap, m.data_source, m.data_quality_score, m.created_at
  FROM market_data m
UNION ALL
SELECT u.*
  FROM market_data_block b
 CROSS JOIN LATERAL market_data_block_rows(b.venue, b.symbol, b.timeframe, b.period_start,
                                           b.period_end) u;
-- tradestore:statement
-- The catalog counts rows and blocks (migration 0023).
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
