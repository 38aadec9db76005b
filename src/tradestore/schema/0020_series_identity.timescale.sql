-- tradestore:no-transaction
-- tradestore 0020 (TimescaleDB): a series is (venue, symbol, timeframe); see the
-- .native.sql variant. Continuous aggregates cannot change their GROUP BY, so they are
-- made again grouped by venue and symbol. What they held below the oldest raw chunk still
-- kept (rollups outlive raw retention) is copied first into market_data_rollup_kept,
-- which reads of those buckets use (marketdata/rollups.py); everything above is re-materialised
-- from the raw candles by the next refresh. Compression is turned off for the key change
-- (its chunks are decompressed) and on again, segmented by venue, symbol and timeframe.
CREATE TABLE market_data_rollup_kept (
    venue VARCHAR(20) NOT NULL,
    symbol VARCHAR(20) NOT NULL,
    timeframe VARCHAR(5) NOT NULL,
    timestamp TIMESTAMP WITH TIME ZONE NOT NULL,
    open NUMERIC NOT NULL,
    high NUMERIC NOT NULL,
    low NUMERIC NOT NULL,
    close NUMERIC NOT NULL,
    volume NUMERIC NOT NULL,
    trades_count BIGINT,
    vwap NUMERIC,
    PRIMARY KEY (venue, symbol, timeframe, timestamp)
);
-- tradestore:statement
INSERT INTO market_data_rollup_kept
SELECT 'dydx', symbol, '5m', bucket, open, high, low, close, volume, trades_count, vwap
  FROM market_data_5m
 WHERE bucket < coalesce((SELECT min(range_start) FROM timescaledb_information.chunks
                           WHERE hypertable_name = 'market_data'), 'infinity');
-- tradestore:statement
INSERT INTO market_data_rollup_kept
SELECT 'dydx', symbol, '15m', bucket, open, high, low, close, volume, trades_count, vwap
  FROM market_data_15m
 WHERE bucket < coalesce((SELECT min(range_start) FROM timescaledb_information.chunks
                           WHERE hypertable_name = 'market_data'), 'infinity');
-- tradestore:statement
INSERT INTO market_data_rollup_kept
SELECT 'dydx', symbol, '30m', bucket, open, high, low, close, volume, trades_count, vwap
  FROM market_data_30m
 WHERE bucket < coalesce((SELECT min(range_start) FROM timescaledb_information.chunks
                           WHERE hypertable_name = 'market_data'), 'infinity');
-- tradestore:statement
INSERT INTO market_data_rollup_kept
SELECT 'dydx', symbol, '1h', bucket, open, high, low, close, volume, trades_count, vwap
  FROM market_data_1h
 WHERE bucket < coalesce((SELECT min(range_start) FROM timescaledb_information.chunks
                           WHERE hypertable_name = 'market_data'), 'infinity');
-- tradestore:statement
INSERT INTO market_data_rollup_kept
SELECT 'dydx', symbol, '4h', bucket, open, high, low, close, volume, trades_count, vwap
  FROM market_data_4h
 WHERE bucket < coalesce((SELECT min(range_start) FROM timescaledb_information.chunks
                           WHERE hypertable_name = 'market_data'), 'infinity');
-- tradestore:statement
INSERT INTO market_data_rollup_kept
SELECT 'dydx', symbol, '1d', bucket, open, high, low, close, volume, trades_count, vwap
  FROM market_data_1d
 WHERE bucket < coalesce((SELECT min(range_start) FROM timescaledb_information.chunks
                           WHERE hypertable_name = 'market_data'), 'infinity');
-- tradestore:statement
-- TimescaleDB's scheduler may be running a refresh of these aggregates (a new database's
-- policies start at once): unschedule them first, and retry a drop that meets a job
-- finishing ("tuple concurrently deleted") instead of failing the migration.
SELECT alter_job(job_id, scheduled => FALSE)
  FROM timescaledb_information.jobs
 WHERE proc_name IN ('policy_refresh_continuous_aggregate', 'policy_compression');
-- tradestore:statement
-- and let a run already under way finish (at most 30 s) before its aggregate goes
DO $$
DECLARE
    waited INT := 0;
BEGIN
    WHILE waited < 120 AND EXISTS (
        SELECT 1 FROM timescaledb_information.job_stats s
          JOIN timescaledb_information.jobs j ON j.job_id = s.job_id
         WHERE j.proc_name IN ('policy_refresh_continuous_aggregate', 'policy_compression')
           AND s.job_status = 'Running') LOOP
        PERFORM pg_sleep(0.25);
        waited := waited + 1;
    END LOOP;
END
$$;
-- tradestore:statement
DO $$
DECLARE
    view_name TEXT;
    attempt INT;
BEGIN
    FOREACH view_name IN ARRAY ARRAY['market_data_5m', 'market_data_15m', 'market_data_30m',
                                     'market_data_1h', 'market_data_4h', 'market_data_1d'] LOOP
        FOR attempt IN 1..40 LOOP
            BEGIN
                EXECUTE format('DROP MATERIALIZED VIEW IF EXISTS %I', view_name);
                EXIT;
            EXCEPTION WHEN internal_error OR lock_not_available OR deadlock_detected THEN
                IF attempt = 40 THEN
                    RAISE;
                END IF;
                PERFORM pg_sleep(0.25);
            END;
        END LOOP;
    END LOOP;
END
$$;
-- tradestore:statement
SELECT remove_compression_policy('market_data', if_exists => TRUE);
-- tradestore:statement
SELECT count(decompress_chunk(c, if_compressed => TRUE)) FROM show_chunks('market_data') c;
-- tradestore:statement
ALTER TABLE market_data SET (timescaledb.compress = FALSE);
-- tradestore:statement
ALTER TABLE market_data ADD COLUMN venue VARCHAR(20) NOT NULL DEFAULT 'dydx';
-- tradestore:statement
ALTER TABLE market_data DROP CONSTRAINT market_data_pkey;
-- tradestore:statement
ALTER TABLE market_data ADD PRIMARY KEY (venue, symbol, timeframe, timestamp);
-- tradestore:statement
DROP INDEX idx_market_data_volume;
-- tradestore:statement
CREATE INDEX idx_market_data_volume ON market_data (venue, symbol, volume DESC) WHERE volume > 0;
-- tradestore:statement
ALTER TABLE market_data SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'venue, symbol, timeframe',
    timescaledb.compress_orderby = 'timestamp DESC'
);
-- tradestore:statement
SELECT add_compression_policy('market_data', INTERVAL '7 days', if_not_exists => TRUE);
-- tradestore:statement
ALTER TABLE market_data_catalog ADD COLUMN venue VARCHAR(20) NOT NULL DEFAULT 'dydx';
-- tradestore:statement
ALTER TABLE market_data_catalog DROP CONSTRAINT market_data_catalog_pkey;
-- tradestore:statement
ALTER TABLE market_data_catalog ADD PRIMARY KEY (venue, symbol, timeframe);
-- tradestore:statement
DROP FUNCTION market_data_catalog_refresh(TEXT, TEXT);
-- tradestore:statement
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
-- tradestore:statement
CREATE MATERIALIZED VIEW market_data_5m
    WITH (timescaledb.continuous, timescaledb.materialized_only = FALSE) AS
SELECT venue,
       symbol,
       time_bucket(INTERVAL '5 minutes', timestamp) AS bucket,
       first(open, timestamp) AS open,
       max(high) AS high,
       min(low) AS low,
       last(close, timestamp) AS close,
       sum(volume) AS volume,
       sum(trades_count) AS trades_count,
       round(sum(coalesce(vwap, close) * volume) / nullif(sum(volume), 0), 8) AS vwap
  FROM market_data
 WHERE timeframe = '1m'
 GROUP BY venue, symbol, time_bucket(INTERVAL '5 minutes', timestamp)
WITH NO DATA;
-- tradestore:statement
SELECT add_continuous_aggregate_policy('market_data_5m',
    start_offset => INTERVAL '30 days', end_offset => INTERVAL '5 minutes',
    schedule_interval => INTERVAL '5 minutes', if_not_exists => TRUE);
-- tradestore:statement
CREATE MATERIALIZED VIEW market_data_15m
    WITH (timescaledb.continuous, timescaledb.materialized_only = FALSE) AS
SELECT venue,
       symbol,
       time_bucket(INTERVAL '15 minutes', timestamp) AS bucket,
       first(open, timestamp) AS open,
       max(high) AS high,
       min(low) AS low,
       last(close, timestamp) AS close,
       sum(volume) AS volume,
       sum(trades_count) AS trades_count,
       round(sum(coalesce(vwap, close) * volume) / nullif(sum(volume), 0), 8) AS vwap
  FROM market_data
 WHERE timeframe = '1m'
 GROUP BY venue, symbol, time_bucket(INTERVAL '15 minutes', timestamp)
WITH NO DATA;
-- tradestore:statement
SELECT add_continuous_aggregate_policy('market_data_15m',
    start_offset => INTERVAL '30 days', end_offset => INTERVAL '15 minutes',
    schedule_interval => INTERVAL '15 minutes', if_not_exists => TRUE);
-- tradestore:statement
CREATE MATERIALIZED VIEW market_data_30m
    WITH (timescaledb.continuous, timescaledb.materialized_only = FALSE) AS
SELECT venue,
       symbol,
       time_bucket(INTERVAL '30 minutes', timestamp) AS bucket,
       first(open, timestamp) AS open,
       max(high) AS high,
       min(low) AS low,
       last(close, timestamp) AS close,
       sum(volume) AS volume,
       sum(trades_count) AS trades_count,
       round(sum(coalesce(vwap, close) * volume) / nullif(sum(volume), 0), 8) AS vwap
  FROM market_data
 WHERE timeframe = '1m'
 GROUP BY venue, symbol, time_bucket(INTERVAL '30 minutes', timestamp)
WITH NO DATA;
-- tradestore:statement
SELECT add_continuous_aggregate_policy('market_data_30m',
    start_offset => INTERVAL '30 days', end_offset => INTERVAL '30 minutes',
    schedule_interval => INTERVAL '30 minutes', if_not_exists => TRUE);
-- tradestore:statement
CREATE MATERIALIZED VIEW market_data_1h
    WITH (timescaledb.continuous, timescaledb.materialized_only = FALSE) AS
SELECT venue,
       symbol,
       time_bucket(INTERVAL '1 hour', timestamp) AS bucket,
       first(open, timestamp) AS open,
       max(high) AS high,
       min(low) AS low,
       last(close, timestamp) AS close,
       sum(volume) AS volume,
       sum(trades_count) AS trades_count,
       round(sum(coalesce(vwap, close) * volume) / nullif(sum(volume), 0), 8) AS vwap
  FROM market_data
 WHERE timeframe = '1m'
 GROUP BY venue, symbol, time_bucket(INTERVAL '1 hour', timestamp)
WITH NO DATA;
-- tradestore:statement
SELECT add_continuous_aggregate_policy('market_data_1h',
    start_offset => INTERVAL '30 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '1 hour', if_not_exists => TRUE);
-- tradestore:statement
CREATE MATERIALIZED VIEW market_data_4h
    WITH (timescaledb.continuous, timescaledb.materialized_only = FALSE) AS
SELECT venue,
       symbol,
       time_bucket(INTERVAL '4 hours', timestamp) AS bucket,
       first(open, timestamp) AS open,
       max(high) AS high,
       min(low) AS low,
       last(close, timestamp) AS close,
       sum(volume) AS volume,
       sum(trades_count) AS trades_count,
       round(sum(coalesce(vwap, close) * volume) / nullif(sum(volume), 0), 8) AS vwap
  FROM market_data
 WHERE timeframe = '1m'
 GROUP BY venue, symbol, time_bucket(INTERVAL '4 hours', timestamp)
WITH NO DATA;
-- tradestore:statement
SELECT add_continuous_aggregate_policy('market_data_4h',
    start_offset => INTERVAL '30 days', end_offset => INTERVAL '4 hours',
    schedule_interval => INTERVAL '4 hours', if_not_exists => TRUE);
-- tradestore:statement
CREATE MATERIALIZED VIEW market_data_1d
    WITH (timescaledb.continuous, timescaledb.materialized_only = FALSE) AS
SELECT venue,
       symbol,
       time_bucket(INTERVAL '1 day', timestamp) AS bucket,
       first(open, timestamp) AS open,
       max(high) AS high,
       min(low) AS low,
       last(close, timestamp) AS close,
       sum(volume) AS volume,
       sum(trades_count) AS trades_count,
       round(sum(coalesce(vwap, close) * volume) / nullif(sum(volume), 0), 8) AS vwap
  FROM market_data
 WHERE timeframe = '1m'
 GROUP BY venue, symbol, time_bucket(INTERVAL '1 day', timestamp)
WITH NO DATA;
-- tradestore:statement
SELECT add_continuous_aggregate_policy('market_data_1d',
    start_offset => INTERVAL '30 days', end_offset => INTERVAL '1 day',
    schedule_interval => INTERVAL '1 day', if_not_exists => TRUE);
-- tradestore:statement
-- one transaction per policy refresh, as migration 0019 set
SELECT alter_job(job_id, config => config || jsonb_build_object('buckets_per_batch', 0))
  FROM timescaledb_information.jobs
 WHERE proc_name = 'policy_refresh_continuous_aggregate';
