-- Nothing to do on TimescaleDB: continuous aggregates track changes themselves (see the
-- .native.sql variant).
SELECT 1;
