-- The continuous aggregates' refresh policies covered all history (start_offset NULL):
-- after retention dropped old raw chunks, the next policy run erased the aggregates of
-- that range, which users keep rollups for. The policies now refresh the last 30 days
-- (plus the usual end offset); an older late correction is refreshed by the read that
-- covers it and by `maintain run`, which stay above the oldest raw data kept.
SELECT remove_continuous_aggregate_policy('market_data_5m', if_exists => TRUE);
SELECT add_continuous_aggregate_policy('market_data_5m',
    start_offset => INTERVAL '30 days', end_offset => INTERVAL '5 minutes',
    schedule_interval => INTERVAL '5 minutes', if_not_exists => TRUE);
SELECT remove_continuous_aggregate_policy('market_data_15m', if_exists => TRUE);
SELECT add_continuous_aggregate_policy('market_data_15m',
    start_offset => INTERVAL '30 days', end_offset => INTERVAL '15 minutes',
    schedule_interval => INTERVAL '15 minutes', if_not_exists => TRUE);
SELECT remove_continuous_aggregate_policy('market_data_30m', if_exists => TRUE);
SELECT add_continuous_aggregate_policy('market_data_30m',
    start_offset => INTERVAL '30 days', end_offset => INTERVAL '30 minutes',
    schedule_interval => INTERVAL '30 minutes', if_not_exists => TRUE);
SELECT remove_continuous_aggregate_policy('market_data_1h', if_exists => TRUE);
SELECT add_continuous_aggregate_policy('market_data_1h',
    start_offset => INTERVAL '30 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '1 hour', if_not_exists => TRUE);
SELECT remove_continuous_aggregate_policy('market_data_4h', if_exists => TRUE);
SELECT add_continuous_aggregate_policy('market_data_4h',
    start_offset => INTERVAL '30 days', end_offset => INTERVAL '4 hours',
    schedule_interval => INTERVAL '4 hours', if_not_exists => TRUE);
SELECT remove_continuous_aggregate_policy('market_data_1d', if_exists => TRUE);
SELECT add_continuous_aggregate_policy('market_data_1d',
    start_offset => INTERVAL '30 days', end_offset => INTERVAL '1 day',
    schedule_interval => INTERVAL '1 day', if_not_exists => TRUE);
