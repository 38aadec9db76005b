-- Nothing to do on plain PostgreSQL: what the .timescale.sql variant brings to TimescaleDB
-- (the rollup table, its dirty days, and blocks that replace their rows) is how this mode
-- has worked since migrations 0009 and 0023.
SELECT 1;
