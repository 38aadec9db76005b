"""Candles: models, ingest, columnar reads, resampling, quality, importers."""
