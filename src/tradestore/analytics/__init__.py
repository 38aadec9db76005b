"""Performance metrics, daily strategy metrics, portfolio snapshots, backtests."""
