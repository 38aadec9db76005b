-- Catalog versions key the Redis range cache: they must never be handed out twice for a
-- series, even when its catalog row is deleted and made again (a recount of an emptied
-- series, then a new ingest). Every version now comes from one sequence.
CREATE SEQUENCE market_data_catalog_version_seq;
SELECT setval('market_data_catalog_version_seq',
              (SELECT coalesce(max(version), 0) + 1 FROM market_data_catalog));
ALTER TABLE market_data_catalog
    ALTER COLUMN version SET DEFAULT nextval('market_data_catalog_version_seq');

-- Recount one series from market_data (after rows were removed by retention or archive);
-- the row keeps existing while the series has rows, with a new version.
CREATE OR REPLACE FUNCTION market_data_catalog_refresh(p_symbol TEXT, p_timeframe TEXT)
RETURNS VOID LANGUAGE sql AS $$
    DELETE FROM market_data_catalog c
     WHERE c.symbol = p_symbol AND c.timeframe = p_timeframe
       AND NOT EXISTS (SELECT 1 FROM market_data m
                        WHERE m.symbol = p_symbol AND m.timeframe = p_timeframe);
    INSERT INTO market_data_catalog AS c (symbol, timeframe, first_ts, last_ts, row_count)
    SELECT symbol, timeframe, min(timestamp), max(timestamp), count(*)
      FROM market_data WHERE symbol = p_symbol AND timeframe = p_timeframe
     GROUP BY symbol, timeframe
    ON CONFLICT (symbol, timeframe) DO UPDATE
       SET first_ts = EXCLUDED.first_ts, last_ts = EXCLUDED.last_ts,
           row_count = EXCLUDED.row_count,
           version = nextval('market_data_catalog_version_seq'), updated_at = now();
$$;
