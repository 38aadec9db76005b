-- A trade's close computes its P&L in the UPDATE that closes it, from the row as it is
-- under the row lock: one statement, where the client read the trade, computed the P&L
-- and wrote it only if the row was unchanged (reading again after a concurrent fill).
-- The definition is tradestore.trading.pnl.close_pnl's, which a property test holds
-- this to: exact NUMERIC arithmetic, rounded once, half to even. PL/pgSQL, not SQL: a
-- SQL function that cannot be inlined is planned at every call (~0.3 ms a close).

-- round(value, places) rounds half away from zero; money here rounds half to even.
CREATE FUNCTION round_half_even(value numeric, places int) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    scaled numeric := value * power(10::numeric, places);
BEGIN
    IF abs(scaled - trunc(scaled)) = 0.5 AND mod(trunc(scaled), 2) = 0 THEN
        RETURN trunc(value, places);
    END IF;
    RETURN round(value, places);
END
$$;

-- pnl   = (exit - entry) * qty (negated for a SELL) - fees, to 8 places
-- pnl % = pnl * 100 / (entry * qty), to 4 places, clamped to DECIMAL(8,4)
-- The division is carried to 60 places before rounding: no quotient of these inputs
-- comes that close to a half without being one.
CREATE FUNCTION trade_close_pnl(
    side text, entry_price numeric, exit_price numeric, quantity numeric, fees numeric,
    OUT pnl numeric, OUT pnl_percent numeric
)
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    direction int := CASE side WHEN 'BUY' THEN 1 ELSE -1 END;
BEGIN
    pnl := round_half_even((exit_price - entry_price) * quantity * direction - fees, 8);
    pnl_percent := greatest(-9999.9999, least(9999.9999, round_half_even(
        (pnl * 100)::numeric(1000, 60) / (entry_price * quantity), 4)));
END
$$;
