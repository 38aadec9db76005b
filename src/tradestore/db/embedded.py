"""The zero-setup default: an embedded PostgreSQL (the `pgserver` package).

Started when no database is configured, in `<data_dir>/pgdata` (a per-user directory),
reused by later runs and by other processes at the same time; it stops when the last
process using it exits. It listens on a unix socket only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from tradestore.errors import ConfigurationError

log = logging.getLogger(__name__)

DATABASE_NAME = "tradestore"


@dataclass(frozen=True)
class EmbeddedServer:
    data_dir: Path
    url: str


async def start_embedded(data_dir: Path, *, database: str = DATABASE_NAME) -> EmbeddedServer:
    """Start (or join) the embedded server and make sure `database` exists in it."""
    pgdata = data_dir / "pgdata"
    try:
        admin_url = await asyncio.to_thread(_start, pgdata)
    except Exception as exc:  # pgserver raises plain exceptions of several kinds
        raise ConfigurationError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}. "
            "Set DATABASE_URL to use your own server."
        ) from exc
    await _create_database(admin_url, database)
    url = admin_url.replace("/postgres?", f"/{database}?", 1)
    log.info("embedded PostgreSQL running in %s", pgdata)
    return EmbeddedServer(data_dir=pgdata, url=url)


def _start(pgdata: Path) -> str:
    pgdata.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; that is normal on servers.
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    return str(server.get_uri())


async def _create_database(admin_url: str, database: str) -> None:
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
        cur = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if await cur.fetchone() is None:
            # another process may create it at the same moment
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
