"""Alerts from database metrics, with the seed's thresholds as defaults:
pool utilisation > 90%, a query running > 1 s, a lock wait > 100 ms, disk > 85%,
replication lag > 1 min. Each threshold is configurable."""

from __future__ import annotations

from dataclasses import dataclass

from tradestore.ops.monitoring import DatabaseMetrics
from tradestore.settings import Settings, load_settings


@dataclass(frozen=True)
class AlertThresholds:
    """Each threshold can also be set in the environment or `.env` (Settings):
    TRADESTORE_ALERT_POOL_UTILISATION, _QUERY_MS, _LOCK_WAIT_MS, _DISK_USAGE,
    _REPLICATION_LAG_MS (see `from_settings`)."""

    pool_utilisation: float = 0.90
    query_ms: float = 1000.0
    lock_wait_ms: float = 100.0
    disk_usage: float = 0.85
    replication_lag_ms: float = 60_000.0

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertThresholds:
        """The thresholds of the settings (environment or `.env`)."""
        return cls(
            **{name: getattr(settings, f"alert_{name}") for name in cls.__dataclass_fields__}
        )


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str  # "warning" or "critical"
    value: float
    threshold: float
    message: str


def evaluate(m: DatabaseMetrics, t: AlertThresholds | None = None) -> list[Alert]:
    t = t or AlertThresholds.from_settings(load_settings())
    alerts: list[Alert] = []
    if m.pool_utilisation > t.pool_utilisation:
        alerts.append(
            Alert(
                "pool_exhaustion",
                _severity(m.pool_utilisation >= 1.0),
                m.pool_utilisation,
                t.pool_utilisation,
                f"connection pool {m.pool_utilisation:.0%} used "
                f"({m.pool.get('waiting', 0)} waiting)",
            )
        )
    slow = [q for q in m.long_queries if q["running_ms"] > t.query_ms]
    if slow:
        worst = max(float(q["running_ms"]) for q in slow)
        alerts.append(
            Alert(
                "slow_query",
                _severity(worst > 10 * t.query_ms),
                worst,
                t.query_ms,
                f"{len(slow)} quer{'y' if len(slow) == 1 else 'ies'} running over "
                f"{t.query_ms:g} ms (longest {worst:,.0f} ms)",
            )
        )
    waits = [w for w in m.lock_waits if w["wait_ms"] > t.lock_wait_ms]
    if waits:
        worst = max(float(w["wait_ms"]) for w in waits)
        alerts.append(
            Alert(
                "lock_contention",
                _severity(worst > 10 * t.lock_wait_ms),
                worst,
                t.lock_wait_ms,
                f"{len(waits)} session(s) waiting on a lock (longest {worst:,.0f} ms)",
            )
        )
    if m.disk_usage is not None and m.disk_usage > t.disk_usage:
        alerts.append(
            Alert(
                "disk_space",
                _severity(m.disk_usage > 0.95),
                m.disk_usage,
                t.disk_usage,
                f"database disk {m.disk_usage:.0%} used",
            )
        )
    if m.replication_lag_ms is not None and m.replication_lag_ms > t.replication_lag_ms:
        alerts.append(
            Alert(
                "replication_lag",
                _severity(m.replication_lag_ms > 5 * 60_000),
                m.replication_lag_ms,
                t.replication_lag_ms,
                f"replication lag {m.replication_lag_ms / 1000:,.0f} s",
            )
        )
    return alerts


def _severity(critical: bool) -> str:
    return "critical" if critical else "warning"
