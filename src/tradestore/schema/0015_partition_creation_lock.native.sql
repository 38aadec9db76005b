-- Partition creation could deadlock: two sessions ensuring overlapping months each held
-- the parent's lock from one ATTACH while waiting for the other's advisory lock on the
-- next partition. Creators of a table's partitions now take one advisory lock per table
-- (only when a partition is missing), before any ATTACH: they take turns, in one order.
CREATE OR REPLACE FUNCTION ts_ensure_partition(p_table TEXT, p_ts TIMESTAMPTZ,
    OUT partition_name TEXT, OUT range_start TIMESTAMPTZ, OUT range_end TIMESTAMPTZ)
LANGUAGE plpgsql AS $$
DECLARE
    pol ts_partition_policy%ROWTYPE;
BEGIN
    SELECT * INTO pol FROM ts_partition_policy WHERE table_name = p_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not time-partitioned', p_table USING ERRCODE = 'undefined_table';
    END IF;
    range_start := ts_partition_start(pol.partition_interval, p_ts);
    range_end := range_start + pol.partition_interval;
    partition_name := p_table || '_p' || to_char(range_start AT TIME ZONE 'UTC', 'YYYYMMDD');
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = current_schema() AND c.relname = partition_name) THEN
        RETURN;
    END IF;
    -- held to the end of the transaction: re-taking it later in the same one is free
    PERFORM pg_advisory_xact_lock(hashtext('tradestore.partition'), hashtext(p_table));
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = current_schema() AND c.relname = partition_name) THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                   partition_name, p_table);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   p_table, partition_name, range_start, range_end);
END
$$;
