"""`tradestore demo`: the whole store, end to end, in a database of its own.

The demo never touches data it did not create: it runs in the database `tradestore_demo`
(made anew on every run, on the configured server or the embedded one) with its own
Redis key prefix. A `tradestore_demo` database that the demo did not create is refused.
Each part of tradestore adds a step here; a step gets the open, migrated store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from pydantic import SecretStr
from rich.panel import Panel
from rich.rule import Rule

from tradestore.cli.common import console
from tradestore.cli.formatting import health_table
from tradestore.db.embedded import start_embedded
from tradestore.errors import ConfigurationError
from tradestore.settings import load_settings, mask_url, redact, url_secrets
from tradestore.store import TradeStore

DemoStep = Callable[[TradeStore], Awaitable[None]]

DEMO_DATABASE = "tradestore_demo"
DEMO_MARKER = "made by tradestore demo; dropped and made again by every demo run"
DEMO_REDIS_PREFIX = "tradestore-demo:"
RULE_WIDTH = 100  # section rules when the output is piped or redirected


async def step_schema(store: TradeStore) -> None:
    result = await store.migrate()
    applied = ", ".join(result.applied) or "nothing to do"
    console.print(f"migrations applied: {applied}")
    status = await store.migration_status()
    console.print(
        f"schema: {len(status.applied)} migrations applied, {len(status.pending)} pending; "
        f"time-series mode: {status.mode.value if status.mode else '?'}"
    )
    console.print(health_table(await store.health()))


def _steps() -> list[tuple[str, DemoStep]]:
    from tradestore.demo.analytics import step_analytics
    from tradestore.demo.market import step_market_data
    from tradestore.demo.ops import step_lifecycle, step_operations, step_realtime
    from tradestore.demo.trading import step_trading

    return [
        ("schema and health", step_schema),
        ("strategies, orders and trades", step_trading),
        ("market data", step_market_data),
        ("performance analytics", step_analytics),
        ("real-time services", step_realtime),
        ("operations: config, logs, metrics, alerts", step_operations),
        ("data lifecycle", step_lifecycle),
    ]


async def run_demo() -> None:
    settings = load_settings()
    server_url = settings.postgres_conninfo()
    where = "PostgreSQL at " + mask_url(server_url or "")
    if server_url is None:
        server = await start_embedded(settings.data_dir)
        server_url, where = server.url, f"embedded PostgreSQL in {server.data_dir}"
    demo_url = await recreate_demo_database(server_url)
    demo_settings = settings.model_copy(
        update={"database_url": SecretStr(demo_url), "redis_key_prefix": DEMO_REDIS_PREFIX}
    )
    async with TradeStore(demo_settings) as store:
        console.print(Panel.fit(f"tradestore demo — database {DEMO_DATABASE} on {where}"))
        for title, step in _steps():
            # piped, the console is as wide as any content (common.py): not a rule
            console.print(Rule(title), width=None if console.is_terminal else RULE_WIDTH)
            await step(store)
    console.print(f"[green]demo finished[/] (its data stays in {DEMO_DATABASE} until the next run)")


async def recreate_demo_database(server_url: str, name: str = DEMO_DATABASE) -> str:
    """Drop and make again the demo's own database; its URL. Refuses a database of
    that name that the demo did not make."""
    try:
        async with await psycopg.AsyncConnection.connect(server_url, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT shobj_description(oid, 'pg_database') AS note FROM pg_database "
                "WHERE datname = %s",
                (name,),
            )
            row = await cur.fetchone()
            database = sql.Identifier(name)
            if row is not None:
                if row[0] != DEMO_MARKER:
                    raise ConfigurationError(
                        f"a database named {name} exists and the demo did not make it: "
                        "the demo will not touch it (drop or rename it to run the demo)"
                    )
                await conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(database))
            await conn.execute(sql.SQL("CREATE DATABASE {}").format(database))
            await conn.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(database, sql.Literal(DEMO_MARKER))
            )
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ConfigurationError(
            f"the demo runs in a database of its own ({name}) and this role cannot "
            "create one: grant it CREATEDB, or run the demo without DATABASE_URL (embedded)"
        ) from exc
    except psycopg.Error as exc:
        # from None: the driver's exception quotes a malformed URL, password included
        reason = redact(str(exc).strip().splitlines()[0], url_secrets(server_url))
        raise ConfigurationError(f"cannot prepare the demo database: {reason}") from None
    return _with_database(server_url, name)


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


__all__ = ["DEMO_DATABASE", "recreate_demo_database", "run_demo"]
