"""Settings, read from the environment (and `.env`), validated once at start.

The seed's variables (`DB_HOST`, `DB_PORT`, ..., `REDIS_PASSWORD`) and the usual
`DATABASE_URL` / `REDIS_URL` are accepted as they are; tradestore's own knobs use the
`TRADESTORE_` prefix. A malformed value raises `ConfigurationError` naming the variable.
Secrets never appear in `repr`, logs or error messages.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import platformdirs
import pydantic
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tradestore.errors import ConfigurationError


class TimeSeriesMode(StrEnum):
    AUTO = "auto"
    TIMESCALE = "timescale"
    NATIVE = "native"


class SslMode(StrEnum):
    DISABLE = "disable"
    ALLOW = "allow"
    PREFER = "prefer"
    REQUIRE = "require"
    VERIFY_CA = "verify-ca"
    VERIFY_FULL = "verify-full"


CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("tradestore"))


class Settings(BaseSettings):
    """Everything tradestore needs to connect and behave; see README "Configuration"."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        case_sensitive=False,
    )

    # --- PostgreSQL ---------------------------------------------------------------
    database_url: SecretStr | None = Field(None, validation_alias=_env("DATABASE_URL"))
    # behind PgBouncer in transaction pooling: a URL that reaches PostgreSQL directly, for
    # what needs a session of its own (the migration and maintenance locks, the event
    # relay's LISTEN); and no server-side prepared statements (PgBouncer < 1.21 has none)
    database_direct_url: SecretStr | None = Field(
        None, validation_alias=_env("DATABASE_DIRECT_URL")
    )
    pgbouncer: bool = Field(False, validation_alias=_env("TRADESTORE_PGBOUNCER"))
    # streaming replicas for reads that tolerate staleness: URLs separated by commas
    database_replica_urls: SecretStr | None = Field(
        None, validation_alias=_env("DATABASE_REPLICA_URLS")
    )
    replica_max_lag_s: float = Field(
        5.0, ge=0, validation_alias=_env("TRADESTORE_REPLICA_MAX_LAG_S")
    )
    db_host: str | None = Field(None, validation_alias=_env("DB_HOST"))
    db_port: int = Field(5432, ge=1, le=65535, validation_alias=_env("DB_PORT"))
    db_name: str = Field("trading_bot", validation_alias=_env("DB_NAME"))
    db_user: str = Field("postgres", validation_alias=_env("DB_USER"))
    db_password: SecretStr | None = Field(None, validation_alias=_env("DB_PASSWORD"))
    db_sslmode: SslMode | None = Field(None, validation_alias=_env("DB_SSLMODE", "PGSSLMODE"))
    db_sslrootcert: Path | None = Field(
        None, validation_alias=_env("DB_SSLROOTCERT", "PGSSLROOTCERT")
    )

    pool_min_size: int = Field(2, ge=0, validation_alias=_env("TRADESTORE_POOL_MIN_SIZE"))
    pool_max_size: int = Field(20, ge=1, validation_alias=_env("TRADESTORE_POOL_MAX_SIZE"))
    connect_timeout_s: float = Field(
        2.0, gt=0, validation_alias=_env("TRADESTORE_CONNECT_TIMEOUT_S")
    )
    statement_timeout_ms: int = Field(
        30_000, ge=0, validation_alias=_env("TRADESTORE_STATEMENT_TIMEOUT_MS")
    )
    idle_timeout_s: float = Field(30.0, gt=0, validation_alias=_env("TRADESTORE_IDLE_TIMEOUT_S"))
    migration_lock_timeout_s: float = Field(
        120.0, gt=0, validation_alias=_env("TRADESTORE_MIGRATION_LOCK_TIMEOUT_S")
    )
    timeseries_mode: TimeSeriesMode = Field(
        TimeSeriesMode.AUTO, validation_alias=_env("TRADESTORE_TIMESERIES_MODE")
    )

    # --- embedded PostgreSQL (used when no database is configured) -----------------
    data_dir: Path = Field(
        default_factory=default_data_dir, validation_alias=_env("TRADESTORE_DATA_DIR")
    )

    # --- Redis ----------------------------------------------------------------------
    redis_url: SecretStr | None = Field(None, validation_alias=_env("REDIS_URL"))
    redis_host: str | None = Field(None, validation_alias=_env("REDIS_HOST"))
    redis_port: int = Field(6379, ge=1, le=65535, validation_alias=_env("REDIS_PORT"))
    redis_password: SecretStr | None = Field(None, validation_alias=_env("REDIS_PASSWORD"))
    redis_tls: bool = Field(False, validation_alias=_env("REDIS_TLS"))
    # a Redis Cluster: also implied by a redis+cluster:// or rediss+cluster:// REDIS_URL
    redis_cluster: bool = Field(False, validation_alias=_env("REDIS_CLUSTER"))
    redis_ca_cert: Path | None = Field(None, validation_alias=_env("REDIS_CA_CERT"))
    redis_key_prefix: str = Field(  # no braces: they would be a cluster hash tag
        "tradestore:",
        min_length=1,
        pattern=r"^[^{}]+$",
        validation_alias=_env("TRADESTORE_REDIS_PREFIX"),
    )
    redis_timeout_s: float = Field(1.0, gt=0, validation_alias=_env("TRADESTORE_REDIS_TIMEOUT_S"))

    event_relay: bool = Field(True, validation_alias=_env("TRADESTORE_EVENT_RELAY"))
    # candle periods that closed this long ago are packed into column blocks by
    # maintenance (both time-series modes; 0 = never)
    compact_after_days: float = Field(
        7.0, ge=0, validation_alias=_env("TRADESTORE_COMPACT_AFTER_DAYS")
    )
    config_key: SecretStr | None = Field(None, validation_alias=_env("TRADESTORE_CONFIG_KEY"))
    db_disk_bytes: int | None = Field(None, gt=0, validation_alias=_env("TRADESTORE_DB_DISK_BYTES"))

    # --- alert thresholds (the seed's defaults) ------------------------------------------
    alert_pool_utilisation: float = Field(
        0.90, gt=0, validation_alias=_env("TRADESTORE_ALERT_POOL_UTILISATION")
    )
    alert_query_ms: float = Field(1000.0, gt=0, validation_alias=_env("TRADESTORE_ALERT_QUERY_MS"))
    alert_lock_wait_ms: float = Field(
        100.0, gt=0, validation_alias=_env("TRADESTORE_ALERT_LOCK_WAIT_MS")
    )
    alert_disk_usage: float = Field(
        0.85, gt=0, validation_alias=_env("TRADESTORE_ALERT_DISK_USAGE")
    )
    alert_replication_lag_ms: float = Field(
        60_000.0, gt=0, validation_alias=_env("TRADESTORE_ALERT_REPLICATION_LAG_MS")
    )

    # --- market data -------------------------------------------------------------------
    # candles outside [earliest, now + max future] are rejected row by row (a stray year
    # 2200 or an empty timestamp read as 1970 is a broken row, not history)
    candle_earliest: datetime = Field(
        datetime(1970, 1, 1, tzinfo=UTC), validation_alias=_env("TRADESTORE_CANDLE_EARLIEST")
    )
    candle_max_future_s: float = Field(
        86_400.0, ge=0, validation_alias=_env("TRADESTORE_CANDLE_MAX_FUTURE_S")
    )

    # --- exchanges -----------------------------------------------------------------------
    dydx_indexer_url: str = Field(
        "https://indexer.dydx.trade", validation_alias=_env("TRADESTORE_DYDX_INDEXER_URL")
    )
    # the indexer documents 100 requests per 10 s per IP; one token bucket for every
    # process of this Redis (rate per second, burst as many)
    dydx_requests_per_s: float = Field(
        10.0, gt=0, validation_alias=_env("TRADESTORE_DYDX_REQUESTS_PER_S")
    )

    # CCXT exchanges (source ccxt:<id>): the constructor config of each exchange by id
    # (keys, options, enableRateLimit: JSON), an origin replacing each API URL's host
    # (a local mirror or proxy), and the shared rate (default: the exchange's own rateLimit)
    ccxt_config: dict[str, dict[str, Any]] = Field(
        default_factory=dict, validation_alias=_env("TRADESTORE_CCXT_CONFIG"), repr=False
    )
    ccxt_urls: dict[str, str] = Field(
        default_factory=dict, validation_alias=_env("TRADESTORE_CCXT_URLS")
    )
    ccxt_requests_per_s: float | None = Field(
        None, gt=0, validation_alias=_env("TRADESTORE_CCXT_REQUESTS_PER_S")
    )

    # --- cache -------------------------------------------------------------------------
    cache_ttl_ms: int = Field(300_000, gt=0, validation_alias=_env("TRADESTORE_CACHE_TTL_MS"))
    cache_l1_ttl_ms: int = Field(30_000, gt=0, validation_alias=_env("TRADESTORE_CACHE_L1_TTL_MS"))
    cache_l1_max_items: int = Field(
        10_000, gt=0, validation_alias=_env("TRADESTORE_CACHE_L1_MAX_ITEMS")
    )

    @field_validator("database_url", "redis_url", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme
            if scheme not in ("postgres", "postgresql"):
                raise ValueError("must start with postgresql:// or postgres://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme
            if scheme not in ("redis", "rediss", "unix", *CLUSTER_SCHEMES):
                raise ValueError(
                    "must start with redis://, rediss://, unix://, redis+cluster:// "
                    "or rediss+cluster://"
                )
            if scheme in CLUSTER_SCHEMES:
                cluster_nodes(value.get_secret_value())
        return value

    @pydantic.model_validator(mode="after")
    def _check_pool(self) -> Settings:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError(
                f"TRADESTORE_POOL_MIN_SIZE ({self.pool_min_size}) is larger than "
                f"TRADESTORE_POOL_MAX_SIZE ({self.pool_max_size})"
            )
        return self

    # --- derived ---------------------------------------------------------------------
    @property
    def database_configured(self) -> bool:
        return self.database_url is not None or self.db_host is not None

    @property
    def redis_configured(self) -> bool:
        return self.redis_url is not None or self.redis_host is not None

    def postgres_conninfo(self) -> str | None:
        """The libpq URL to use, or None when the embedded server should be started."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        if self.db_host is None:
            return None
        password = self.db_password.get_secret_value() if self.db_password else ""
        auth = quote(self.db_user, safe="") + (":" + quote(password, safe="") if password else "")
        return f"postgresql://{auth}@{self.db_host}:{self.db_port}/{quote(self.db_name, safe='')}"

    def replica_conninfos(self) -> list[str]:
        """The libpq URLs of DATABASE_REPLICA_URLS (comma-separated), in order."""
        if self.database_replica_urls is None:
            return []
        text = self.database_replica_urls.get_secret_value()
        return [url.strip() for url in text.split(",") if url.strip()]

    def postgres_connect_kwargs(self) -> dict[str, Any]:
        """libpq keywords added to the URL: TLS, timeouts, application name."""
        kwargs: dict[str, Any] = {
            "connect_timeout": max(1, round(self.connect_timeout_s)),
            "application_name": "tradestore",
        }
        if self.db_sslmode is not None:
            kwargs["sslmode"] = self.db_sslmode.value
        if self.db_sslrootcert is not None:
            kwargs["sslrootcert"] = str(self.db_sslrootcert)
        return kwargs

    @property
    def redis_is_cluster(self) -> bool:
        """REDIS_URL names a Redis Cluster (its scheme, or REDIS_CLUSTER=1)."""
        url = self.redis_connection_url()
        return url is not None and (self.redis_cluster or url.split("://")[0] in CLUSTER_SCHEMES)

    def redis_connection_url(self) -> str | None:
        if self.redis_url is not None:
            return self.redis_url.get_secret_value()
        if self.redis_host is None:
            return None
        scheme = "rediss" if self.redis_tls else "redis"
        password = self.redis_password.get_secret_value() if self.redis_password else ""
        auth = f":{quote(password, safe='')}@" if password else ""
        return f"{scheme}://{auth}{self.redis_host}:{self.redis_port}/0"


def cluster_nodes(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """The startup nodes and credentials of `redis+cluster://[user:pass@]h1:p1,h2:p2[/0]`
    (a plain redis:// URL with REDIS_CLUSTER=1 names one node)."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    if parts.path not in ("", "/", "/0"):
        raise ValueError(f"a Redis Cluster has only database 0, not {parts.path.lstrip('/')}")
    nodes = [_host_port(item) for item in hosts.split(",") if item.strip()]
    if not nodes:
        raise ValueError("REDIS_URL names no cluster node (redis+cluster://host:port,...)")
    user, _, password = userinfo.partition(":")
    auth: dict[str, Any] = {"ssl": parts.scheme.startswith("rediss")}
    if user:
        auth["username"] = unquote(user)
    if password:
        auth["password"] = unquote(password)
    return nodes, auth


def _host_port(item: str) -> tuple[str, int]:
    host, _, port = item.strip().rpartition(":")
    if not host:
        host, port = port, "6379"
    if not port.isdigit():
        raise ValueError(f"cluster node {item.strip()!r}: expected host:port")
    return host.strip("[]"), int(port)


def url_secrets(url: str) -> list[str]:
    """The password of a URL as written and as decoded, for redacting messages (libpq
    quotes a malformed URL's parts back in its errors)."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if not password:
        return []
    return sorted({password, unquote(password)}, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    """text with every secret (of 3 or more characters) replaced by `***`."""
    for secret in secrets:
        if len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def mask_url(url: str) -> str:
    """The URL with any password replaced by `***`, safe for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; a malformed value is a ConfigurationError."""
    try:
        return Settings(**overrides)
    except pydantic.ValidationError as exc:
        raise ConfigurationError(_describe(exc)) from None


def _describe(exc: pydantic.ValidationError) -> str:
    lines = []
    for error in exc.errors():
        loc = error.get("loc") or ()
        name = _env_name(str(loc[0])) if loc else "settings"
        given = error.get("input")
        shown = "" if name.endswith(("PASSWORD", "URL", "KEY")) else f" (got {given!r})"
        lines.append(f"{name}: {error['msg']}{shown}")
    return "invalid configuration: " + "; ".join(lines)


def _env_name(field_name: str) -> str:
    field = Settings.model_fields.get(field_name)
    alias = field.validation_alias if field else None
    if isinstance(alias, AliasChoices) and alias.choices:
        return str(alias.choices[0])
    return field_name.upper()
