-- A day's dirty marker could be consumed by a refresh while the ingest that marked it was
-- still uncommitted (ON CONFLICT DO NOTHING takes no lock, and refresh takes markers
-- FOR UPDATE SKIP LOCKED): the refresh recomputed the day without the new rows, and the
-- day then stayed stale with no marker. Marking now updates an existing marker, which
-- locks it until the ingest commits: a refresh skips it meanwhile, and one that took it
-- first makes the ingest wait, then mark the day again.
CREATE OR REPLACE FUNCTION rollup_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_dirty (symbol, day)
    SELECT DISTINCT symbol, (timestamp AT TIME ZONE 'UTC')::date FROM changed_rows
     WHERE timeframe = '1m'
     ORDER BY 1, 2
    ON CONFLICT (symbol, day) DO UPDATE SET marked_at = now();
    RETURN NULL;
END
$$;
