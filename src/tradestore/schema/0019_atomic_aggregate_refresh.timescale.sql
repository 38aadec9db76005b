-- TimescaleDB 2.19+ refreshes continuous aggregates in batches (10 buckets each by
-- default, newest first), each committed on its own: while a refresh ran, readers of the
-- real-time aggregate saw part of the history missing (a 5m read returned 25,610 of
-- 40,000 rows). Every refresh policy now refreshes its window in one transaction
-- (buckets_per_batch 0), so a read sees the aggregate before or after a refresh, never
-- half of it. tradestore's own refreshes pass the same option (marketdata/rollups.py).
SELECT alter_job(job_id, config => config || jsonb_build_object('buckets_per_batch', 0))
  FROM timescaledb_information.jobs
 WHERE proc_name = 'policy_refresh_continuous_aggregate';
