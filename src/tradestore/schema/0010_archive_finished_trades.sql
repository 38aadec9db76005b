-- The archive moves finished trades only (CLOSED or CANCELLED), by the time they
-- finished; open positions never leave `trades`. This index serves its batches.
CREATE INDEX idx_trades_finished_at ON trades ((coalesce(exit_time, entry_time)))
    WHERE status IN ('CLOSED', 'CANCELLED');

-- Live and archived trades together, for history, reports and metrics that span
-- archived periods (the two tables have the same columns: trades_archive is LIKE trades).
CREATE VIEW trades_with_archive AS
    SELECT * FROM trades
    UNION ALL
    SELECT * FROM trades_archive;
