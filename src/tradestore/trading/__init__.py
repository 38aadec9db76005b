"""Strategies, orders and trades: models and repositories."""
