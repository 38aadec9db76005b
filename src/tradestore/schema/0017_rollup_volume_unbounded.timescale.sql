-- Nothing to do on TimescaleDB: continuous aggregates keep sum(volume) as unbounded
-- NUMERIC (see the .native.sql variant).
SELECT 1;
