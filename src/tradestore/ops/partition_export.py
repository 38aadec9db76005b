"""Whole old market_data partitions to Parquet, with a manifest, and back.

export: the partition's rows, ordered by key, go to <dir>/<partition>.parquet (prices as
exact decimal128(18,8)); the manifest <partition>.manifest.json records table,
partition, range, rows and the file's sha256. The whole export runs in one transaction
that first takes a SHARE lock on the partition: writers of that month (a late backfill)
wait until it commits, so the rows exported, the rows counted and (with
`drop_after=True`) the rows dropped are the same rows; nothing can arrive in between.
import: the manifest's file must sit beside it (a plain file name); its checksum and row
count are verified, the partition is made if needed, and the rows are streamed in record
batches into the table (existing keys are left as they are).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from tradestore.db.database import Connection, Database
from tradestore.db.partitions import PartitionManager
from tradestore.errors import ValidationError
from tradestore.ops.retention import Partition, Retention, partitions_of

COLUMNS = (
    "symbol",
    "timeframe",
    "timestamp",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "trades_count",
    "vwap",
    "data_source",
    "data_quality_score",
    "created_at",
)
SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("timeframe", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        *[(c, pa.decimal128(18, 8)) for c in ("open", "high", "low", "close", "volume")],
        ("trades_count", pa.int32()),
        ("vwap", pa.decimal128(18, 8)),
        ("data_source", pa.string()),
        ("data_quality_score", pa.int16()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)
BATCH = 50_000
IMPORT_BATCH = 5_000  # rows a Python object each while copied in: keep the batch small


@dataclass(frozen=True)
class Manifest:
    table: str
    partition: str
    range_start: str
    range_end: str
    rows: int
    sha256: str
    file: str
    exported_at: str


async def export_partition(
    db: Database,
    retention: Retention,
    partition: str,
    directory: Path,
    *,
    drop_after: bool = False,
) -> Manifest:
    part = await _find(db, partition)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{partition}.parquet"
    table = sql.Identifier(partition)
    async with db.connection() as conn, conn.transaction():
        await conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(table))
        rows = await _write_parquet(conn, table, path)
        stored = pq.ParquetFile(path).metadata.num_rows
        cur = await conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(table))
        counted = await cur.fetchone()
        count = int(counted["n"]) if counted else -1
        if stored != rows or count != rows:
            raise ValidationError(
                f"export of {partition} is incomplete: {stored} in the file, "
                f"{count} in the partition"
            )
        manifest = Manifest(
            "market_data",
            partition,
            part.start.isoformat(),
            part.end.isoformat(),
            rows,
            _sha256(path),
            path.name,
            datetime.now(UTC).isoformat(),
        )
        manifest_path = directory / f"{partition}.manifest.json"
        manifest_path.write_text(json.dumps(asdict(manifest), indent=2))
        if drop_after:
            await retention.drop(part, conn)
    return manifest


async def _write_parquet(conn: Connection, table: sql.Identifier, path: Path) -> int:
    query = sql.SQL("SELECT {} FROM {} ORDER BY symbol, timeframe, timestamp").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), table
    )
    rows = 0
    with pq.ParquetWriter(path, SCHEMA) as writer:
        async with conn.cursor(name="export") as cur:
            await cur.execute(query)
            while batch := await cur.fetchmany(BATCH):
                writer.write_table(pa.Table.from_pylist([dict(r) for r in batch], SCHEMA))
                rows += len(batch)
    return rows


async def import_partition(db: Database, partitions: PartitionManager, manifest_path: Path) -> int:
    manifest = Manifest(**json.loads(manifest_path.read_text()))
    path = _beside(manifest_path, manifest.file)
    if _sha256(path) != manifest.sha256:
        raise ValidationError(f"{path.name}: sha256 does not match its manifest")
    parquet = pq.ParquetFile(path)
    if parquet.metadata.num_rows != manifest.rows:
        raise ValidationError(
            f"{path.name}: {parquet.metadata.num_rows} rows, manifest says {manifest.rows}"
        )
    start = datetime.fromisoformat(manifest.range_start)
    end = datetime.fromisoformat(manifest.range_end)
    await partitions.ensure("market_data", start, end - (end - start) / 1e6)
    columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
    async with db.transaction() as conn:
        await conn.execute(
            "CREATE TEMP TABLE md_import (LIKE market_data INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        async with (
            conn.cursor() as cur,
            cur.copy(sql.SQL("COPY md_import ({}) FROM STDIN").format(columns)) as copy,
        ):
            for batch in parquet.iter_batches(batch_size=IMPORT_BATCH, columns=list(COLUMNS)):
                for row in zip(*(column.to_pylist() for column in batch.columns), strict=True):
                    await copy.write_row(row)
        cur2 = await conn.execute(
            sql.SQL(
                "INSERT INTO market_data ({0}) SELECT {0} FROM md_import ORDER BY timestamp "
                "ON CONFLICT DO NOTHING"
            ).format(columns)
        )
        inserted = cur2.rowcount
        await conn.execute(
            "SELECT market_data_catalog_refresh(symbol, timeframe) FROM "
            "(SELECT DISTINCT symbol, timeframe FROM md_import) s"
        )
    return inserted


def _beside(manifest_path: Path, name: str) -> Path:
    """The manifest's data file: a plain file name in the manifest's own folder (a
    manifest cannot point anywhere else, e.g. `../../etc/hostname`)."""
    if not name or Path(name).name != name or name in (".", ".."):
        raise ValidationError(
            f"manifest names {name!r}: the data file must be a plain file name beside it",
            field="file",
            value=name,
        )
    return manifest_path.parent / name


async def _find(db: Database, name: str) -> Partition:
    for part in await partitions_of(db, "market_data"):
        if part.name == name:
            return part
    raise ValidationError(f"no market_data partition named {name!r}", field="partition", value=name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
