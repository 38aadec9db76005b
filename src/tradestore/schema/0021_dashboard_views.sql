-- Views for dashboards and ad-hoc SQL (Grafana's PostgreSQL data source reads these):
-- documented in docs/observability.md, tested in tests/db/test_views.py.

-- Every trade, archived ones included, with its strategy's name and duration.
CREATE VIEW v_trades AS
SELECT t.id, s.name AS strategy, t.strategy_id, t.symbol, t.side, t.status,
       t.entry_time, t.exit_time, t.entry_price, t.exit_price, t.filled_quantity AS quantity,
       t.pnl, t.pnl_percent, t.fees, t.exit_reason,
       t.exit_time - t.entry_time AS duration
  FROM trades_with_archive t
  JOIN strategies s ON s.id = t.strategy_id;

-- Equity per strategy over time: the portfolio snapshots' values.
CREATE VIEW v_equity AS
SELECT p.snapshot_time AS time, s.name AS strategy, p.strategy_id,
       p.total_value AS equity, p.cash_balance, p.unrealized_pnl, p.realized_pnl,
       p.daily_pnl, p.daily_pnl_percent
  FROM portfolio_snapshots p
  JOIN strategies s ON s.id = p.strategy_id;

-- How fresh each stored candle series is: when its latest candle closed, and how long ago.
CREATE VIEW v_data_freshness AS
SELECT c.venue, c.symbol, c.timeframe, c.first_ts, c.last_ts, c.row_count,
       c.last_ts + step.length AS closed_at,
       now() - (c.last_ts + step.length) AS age
  FROM market_data_catalog c
  CROSS JOIN LATERAL (
      SELECT CASE c.timeframe
                 WHEN '1m' THEN interval '1 minute'
                 WHEN '5m' THEN interval '5 minutes'
                 WHEN '15m' THEN interval '15 minutes'
                 WHEN '30m' THEN interval '30 minutes'
                 WHEN '1h' THEN interval '1 hour'
                 WHEN '4h' THEN interval '4 hours'
                 WHEN '1d' THEN interval '1 day'
                 WHEN '1w' THEN interval '1 week'
                 WHEN '1M' THEN interval '1 month'
             END AS length) step;
