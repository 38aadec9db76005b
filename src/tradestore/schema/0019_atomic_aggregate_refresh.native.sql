-- TimescaleDB only (continuous aggregate refresh policies); nothing to do here.
SELECT 1;
