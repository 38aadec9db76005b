"""Candles from exchanges: backfill and follow (dYdX's v4 indexer today)."""
