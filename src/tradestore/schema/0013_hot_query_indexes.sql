-- Indexes that hot queries and foreign keys need (each proved by tests/db/test_query_plans.py).

-- search_logs orders by (timestamp DESC, id DESC) whatever the filters
CREATE INDEX idx_system_logs_time ON system_logs (timestamp DESC, id DESC);
-- the ON DELETE SET NULL foreign keys to trades and orders: without these, archiving or
-- deleting one trade scans every log partition
CREATE INDEX idx_system_logs_trade ON system_logs (trade_id) WHERE trade_id IS NOT NULL;
CREATE INDEX idx_system_logs_order ON system_logs (order_id) WHERE order_id IS NOT NULL;
-- pruning published events by age, and relaying recent ones again after a Redis loss
CREATE INDEX idx_event_outbox_published ON event_outbox (published_at)
    WHERE published_at IS NOT NULL;
