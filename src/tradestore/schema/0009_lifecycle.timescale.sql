-- tradestore:no-transaction
-- tradestore 0009 (TimescaleDB): archive, retention, compression, continuous aggregates.
-- Continuous aggregates cannot be created inside a transaction block, so this file runs
-- statement by statement. Written from the TimescaleDB documentation; exercised by the
-- tests marked `timescale` against a TimescaleDB server.
CREATE TABLE trades_archive (LIKE trades INCLUDING ALL);
-- tradestore:statement
CREATE TABLE archive_runs (
    id BIGSERIAL PRIMARY KEY,
    cutoff TIMESTAMP WITH TIME ZONE NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'RUNNING' CHECK (status IN ('RUNNING', 'DONE', 'FAILED')),
    moved BIGINT NOT NULL DEFAULT 0,
    eligible_before BIGINT NOT NULL,     -- trades older than the cutoff when the run began
    archive_before BIGINT NOT NULL,      -- rows in trades_archive when the run began
    started_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    finished_at TIMESTAMP WITH TIME ZONE,
    error_message TEXT
);
-- tradestore:statement
-- at most one unfinished run: a crashed run is resumed, not duplicated
CREATE UNIQUE INDEX uq_archive_runs_running ON archive_runs ((true)) WHERE status = 'RUNNING';
-- tradestore:statement
CREATE TABLE retention_policy (
    table_name TEXT PRIMARY KEY CHECK (table_name IN ('market_data', 'portfolio_snapshots', 'system_logs')),
    keep INTERVAL CHECK (keep IS NULL OR keep > INTERVAL '0'),
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);
-- tradestore:statement
INSERT INTO retention_policy (table_name, keep) VALUES
    ('market_data', NULL), ('portfolio_snapshots', NULL), ('system_logs', INTERVAL '30 days');
-- tradestore:statement
ALTER TABLE market_data SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'symbol, timeframe',
    timescaledb.compress_orderby = 'timestamp DESC'
);
-- tradestore:statement
SELECT add_compression_policy('market_data', INTERVAL '7 days', if_not_exists => TRUE);
-- tradestore:statement
SELECT add_retention_policy('system_logs', INTERVAL '30 days', if_not_exists => TRUE);
-- tradestore:statement
CREATE MATERIALIZED VIEW market_data_5m
    WITH (timescaledb.continuous, timescaledb.materialized_only = FALSE) AS
SELECT symbol,
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
 GROUP BY symbol, time_bucket(INTERVAL '5 minutes', timestamp)
WITH NO DATA;
-- tradestore:statement
SELECT add_continuous_aggregate_policy('market_data_5m',
    start_offset => NULL, end_offset => INTERVAL '5 minutes',
    schedule_interval => INTERVAL '5 minutes', if_not_exists => TRUE);
-- tradestore:statement
CREATE MATERIALIZED VIEW market_data_15m
    WITH (timescaledb.continuous, timescaledb.materialized_only = FALSE) AS
SELECT symbol,
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
 GROUP BY symbol, time_bucket(INTERVAL '15 minutes', timestamp)
WITH NO DATA;
-- tradestore:statement
SELECT add_continuous_aggregate_policy('market_data_15m',
    start_offset => NULL, end_offset => INTERVAL '15 minutes',
    schedule_interval => INTERVAL '15 minutes', if_not_exists => TRUE);
-- tradestore:statement
CREATE MATERIALIZED VIEW market_data_30m
    WITH (timescaledb.continuous, timescaledb.materialized_only = FALSE) AS
SELECT symbol,
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
 GROUP BY symbol, time_bucket(INTERVAL '30 minutes', timestamp)
WITH NO DATA;
-- tradestore:statement
SELECT add_continuous_aggregate_policy('market_data_30m',
    start_offset => NULL, end_offset => INTERVAL '30 minutes',
    schedule_interval => INTERVAL '30 minutes', if_not_exists => TRUE);
-- tradestore:statement
CREATE MATERIALIZED VIEW market_data_1h
    WITH (timescaledb.continuous, timescaledb.materialized_only = FALSE) AS
SELECT symbol,
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
 GROUP BY symbol, time_bucket(INTERVAL '1 hour', timestamp)
WITH NO DATA;
-- tradestore:statement
SELECT add_continuous_aggregate_policy('market_data_1h',
    start_offset => NULL, end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '1 hour', if_not_exists => TRUE);
-- tradestore:statement
CREATE MATERIALIZED VIEW market_data_4h
    WITH (timescaledb.continuous, timescaledb.materialized_only = FALSE) AS
SELECT symbol,
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
 GROUP BY symbol, time_bucket(INTERVAL '4 hours', timestamp)
WITH NO DATA;
-- tradestore:statement
SELECT add_continuous_aggregate_policy('market_data_4h',
    start_offset => NULL, end_offset => INTERVAL '4 hours',
    schedule_interval => INTERVAL '4 hours', if_not_exists => TRUE);
-- tradestore:statement
CREATE MATERIALIZED VIEW market_data_1d
    WITH (timescaledb.continuous, timescaledb.materialized_only = FALSE) AS
SELECT symbol,
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
 GROUP BY symbol, time_bucket(INTERVAL '1 day', timestamp)
WITH NO DATA;
-- tradestore:statement
SELECT add_continuous_aggregate_policy('market_data_1d',
    start_offset => NULL, end_offset => INTERVAL '1 day',
    schedule_interval => INTERVAL '1 day', if_not_exists => TRUE);
