-- Nothing to do on plain PostgreSQL: a block holds its period's candles instead of rows
-- there (migration 0023). See the .timescale.sql variant.
SELECT 1;
