-- Nothing to do on TimescaleDB: it creates chunks itself (see the .native.sql variant).
SELECT 1;
