"""Retention, archive, monitoring, alerts, exporter, system logs, config store."""
