-- tradestore 0004: what the trading repositories need beyond the seed.

-- A retried create with the same client_order_id returns the first order, never a second.
CREATE UNIQUE INDEX uq_orders_strategy_client_order_id
    ON orders (strategy_id, client_order_id) WHERE client_order_id IS NOT NULL;

-- Defence in depth behind the conditional fill UPDATEs: nothing is ever overfilled.
ALTER TABLE orders ADD CONSTRAINT orders_fill_within_quantity
    CHECK (filled_quantity >= 0 AND filled_quantity <= quantity);
ALTER TABLE trades ADD CONSTRAINT trades_fill_within_quantity
    CHECK (filled_quantity >= 0 AND filled_quantity <= quantity);
ALTER TABLE orders ADD CONSTRAINT orders_fees_not_negative CHECK (fees >= 0);
ALTER TABLE trades ADD CONSTRAINT trades_fees_not_negative CHECK (fees >= 0);

-- Keyset pagination of trade history: (entry_time, id) is a total order, newest first.
CREATE INDEX idx_trades_history ON trades (entry_time DESC, id DESC);
CREATE INDEX idx_trades_strategy_history ON trades (strategy_id, entry_time DESC, id DESC);
CREATE INDEX idx_trades_symbol_history ON trades (symbol, entry_time DESC, id DESC);
-- Open trades of one strategy (the hot query of a running bot).
CREATE INDEX idx_trades_strategy_open ON trades (strategy_id, entry_time DESC)
    WHERE status IN ('OPEN', 'PARTIALLY_FILLED');
