"""PostgreSQL: pool, embedded server, migrations, partitions."""
