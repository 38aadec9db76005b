-- The average fill price was kept by re-averaging the rounded average at every fill, which
-- drifts (20 fills of 1 at 100..119 gave 109.49999999, not 109.5). The exact notional
-- (sum of price x quantity, unbounded NUMERIC) is kept instead and the average derived
-- from it, rounded once.
ALTER TABLE orders ADD COLUMN filled_notional NUMERIC NOT NULL DEFAULT 0;
UPDATE orders SET filled_notional = avg_fill_price * filled_quantity
 WHERE avg_fill_price IS NOT NULL AND filled_quantity > 0;
