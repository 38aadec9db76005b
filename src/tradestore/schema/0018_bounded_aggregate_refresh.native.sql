-- Nothing to do on plain PostgreSQL: rollups are refreshed by `maintain run` (see the
-- .timescale.sql variant).
SELECT 1;
