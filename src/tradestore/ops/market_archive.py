"""market_data archives: the candles of a time range [start, end) to Parquet with a
manifest, and back, in both time-series modes.

A range is what users think in; a native partition or a TimescaleDB chunk is only a
name for one (`ArchiveRange.named`).

export: one REPEATABLE READ transaction writes the range's rows, ordered by key, to
<dir>/<label>.parquet (prices as exact decimal128(18,8)), checks the file's and the
snapshot's counts against each other, and writes <label>.manifest.json (table, range,
rows, the file's sha256).

With `drop_after`, the range must be made of whole partitions (native) or chunks
(TimescaleDB). They are locked in SHARE mode before the snapshot is taken, so a late
backfill of the range waits for the export to commit: the rows exported, counted and
dropped are the same rows. Whole partitions and chunks go without row triggers, so the
rollups of the range are kept, as after retention (they outlive raw data).

import: the manifest's file must sit beside it (a plain file name); its checksum and
row count are verified, partitions are made for the months that have rows (native),
and the rows are streamed in record batches (existing keys are left as they are).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from psycopg import sql

from tradestore.db.database import Connection, Database
from tradestore.db.partitions import Partition, PartitionManager, partitions_of
from tradestore.errors import Conflict, NotFound, ValidationError
from tradestore.marketdata.blocks import expand
from tradestore.marketdata.validation import LOCK_SERIES, series_key
from tradestore.ops.retention import Retention
from tradestore.settings import TimeSeriesMode

COLUMNS = (
    "venue",
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
        ("venue", pa.string()),
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

CHUNKS = """
SELECT chunk_schema, chunk_name, range_start, range_end
  FROM timescaledb_information.chunks
 WHERE hypertable_name = 'market_data' AND range_start < %s AND range_end > %s
 ORDER BY range_start
"""
CHUNK_NAMED = """
SELECT range_start, range_end FROM timescaledb_information.chunks
 WHERE hypertable_name = 'market_data' AND chunk_name = %s
"""
DROP_CHUNK = "SELECT drop_chunks('market_data', older_than => %s, newer_than => %s) AS chunk"
# the candles of the range: rows, and those of column blocks (marketdata/blocks.py)
IN_RANGE = sql.SQL("""FROM (
    SELECT {columns} FROM market_data WHERE timestamp >= {start} AND timestamp < {end}
    UNION ALL
    SELECT u.* FROM (SELECT DISTINCT venue, symbol, timeframe FROM market_data_block
                      WHERE period_start < {end} AND period_end > {start}) s
     CROSS JOIN LATERAL market_data_block_rows(s.venue, s.symbol, s.timeframe, {start}, {end}) u
) candles""")
# Blocks reaching across the range's ends are expanded before a dropping export, so that
# the range holds rows and whole blocks only.
STRADDLING = """
SELECT DISTINCT venue, symbol, timeframe FROM market_data_block
 WHERE (period_start < %(start)s AND period_end > %(start)s)
    OR (period_start < %(end)s AND period_end > %(end)s)
"""
DROP_BLOCKS = "DELETE FROM market_data_block WHERE period_start >= %s AND period_end <= %s"
IMPORTED_SERIES = """
SELECT venue, symbol, timeframe, min(timestamp) AS first, max(timestamp) AS last
  FROM md_import GROUP BY venue, symbol, timeframe
"""
RECOUNT = """
SELECT market_data_catalog_refresh(venue, symbol, timeframe)
  FROM unnest(%s::text[], %s::text[], %s::text[]) AS s(venue, symbol, timeframe)
"""


@dataclass(frozen=True)
class ArchiveRange:
    """[start, end) of market_data, and the label its files are named by."""

    start: datetime
    end: datetime
    label: str

    @classmethod
    def of(cls, start: datetime, end: datetime) -> ArchiveRange:
        if end <= start:
            raise ValidationError(f"the range ends ({end:%Y-%m-%d %H:%M}) before it starts")
        return cls(start, end, f"market_data_{start:%Y%m%dT%H%M}_{end:%Y%m%dT%H%M}")

    @classmethod
    async def named(cls, db: Database, mode: TimeSeriesMode, name: str) -> ArchiveRange:
        """The range of a native partition or a TimescaleDB chunk, by its name."""
        if mode is TimeSeriesMode.TIMESCALE:
            row = await db.query_one(CHUNK_NAMED, (name,))
            if row is not None:
                return cls(row["range_start"], row["range_end"], name)
        else:
            for part in await partitions_of(db, "market_data"):
                if part.name == name:
                    return cls(part.start, part.end, name)
        kind = "chunk" if mode is TimeSeriesMode.TIMESCALE else "partition"
        raise NotFound(f"no market_data {kind} named {name!r}")


@dataclass(frozen=True)
class Manifest:
    table: str
    partition: str  # the range's label (a partition or chunk name when it was one)
    range_start: str
    range_end: str
    rows: int
    sha256: str
    file: str
    exported_at: str


@dataclass(frozen=True)
class _Piece:
    """A whole partition or chunk inside an archive range: what a drop removes."""

    schema: str
    name: str
    start: datetime
    end: datetime


class MarketArchive:
    def __init__(
        self,
        db: Database,
        mode: TimeSeriesMode,
        retention: Retention,
        partitions: PartitionManager,
    ) -> None:
        self.db = db
        self.mode = mode
        self.retention = retention
        self.partitions = partitions

    async def export(
        self, span: ArchiveRange, directory: Path, *, drop_after: bool = False
    ) -> Manifest:
        if drop_after:  # first: on TimescaleDB a block's rows may need a chunk made
            await self._expand_straddling(span)
        pieces = await self._pieces(span) if drop_after else []
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        path = directory / f"{span.label}.parquet"
        async with self.db.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            for piece in pieces:  # before the snapshot: writers of the range finish first
                await conn.execute(
                    sql.SQL("LOCK TABLE {}.{} IN SHARE MODE").format(
                        sql.Identifier(piece.schema), sql.Identifier(piece.name)
                    )
                )
            candles = self._in_range(span)
            rows = await _write_parquet(conn, candles, path)
            await _check_counts(conn, candles, span, path, rows)
            manifest = Manifest(
                "market_data",
                span.label,
                span.start.isoformat(),
                span.end.isoformat(),
                rows,
                _sha256(path),
                path.name,
                datetime.now(UTC).isoformat(),
            )
            (directory / f"{span.label}.manifest.json").write_text(
                json.dumps(asdict(manifest), indent=2)
            )
            if drop_after:
                await self._drop(conn, span, pieces)
        return manifest

    async def _pieces(self, span: ArchiveRange) -> list[_Piece]:
        """The partitions or chunks holding the range; each must lie wholly inside it."""
        if self.mode is TimeSeriesMode.TIMESCALE:
            found = [
                _Piece(r["chunk_schema"], r["chunk_name"], r["range_start"], r["range_end"])
                for r in await self.db.query(CHUNKS, (span.end, span.start))
            ]
        else:
            found = [
                _Piece("public", p.name, p.start, p.end)
                for p in await partitions_of(self.db, "market_data")
                if p.start < span.end and p.end > span.start
            ]
        for piece in found:
            if piece.start < span.start or piece.end > span.end:
                kind = "chunk" if self.mode is TimeSeriesMode.TIMESCALE else "partition"
                raise ValidationError(
                    f"--drop removes whole {kind}s, and {piece.name} "
                    f"({piece.start:%Y-%m-%d %H:%M} to {piece.end:%Y-%m-%d %H:%M}) is only "
                    "partly in the range: widen or narrow the range to its bounds",
                    field="range",
                )
        return found

    async def _expand_straddling(self, span: ArchiveRange) -> None:
        bounds = {"start": span.start, "end": span.end}
        for s in await self.db.query(STRADDLING, bounds):
            series = (s["venue"], s["symbol"], s["timeframe"])
            async with self.db.transaction() as conn:
                await conn.execute(LOCK_SERIES, (series_key(*series),))
                for edge in (span.start, span.end):
                    await expand(conn, *series, edge, edge + timedelta(microseconds=1))

    async def _drop(self, conn: Connection, span: ArchiveRange, pieces: list[_Piece]) -> None:
        series = await conn.execute(
            sql.SQL("SELECT DISTINCT venue, symbol, timeframe {}").format(self._in_range(span))
        )
        affected = await series.fetchall()
        for piece in pieces:
            if self.mode is TimeSeriesMode.TIMESCALE:
                await conn.execute(DROP_CHUNK, (piece.end, piece.start))
            else:
                part = Partition("market_data", piece.name, piece.start, piece.end)
                await self.retention.drop(part, conn)
        await conn.execute(DROP_BLOCKS, (span.start, span.end))  # no triggers: rollups stay
        left = await conn.execute(sql.SQL("SELECT count(*) AS n {}").format(self._in_range(span)))
        remaining = await left.fetchone()
        if remaining and remaining["n"]:
            raise Conflict(
                f"{remaining['n']} row(s) arrived in the range during the export, in a "
                "partition or chunk made meanwhile; nothing was dropped: run it again"
            )
        await conn.execute(
            RECOUNT,
            (
                [s["venue"] for s in affected],
                [s["symbol"] for s in affected],
                [s["timeframe"] for s in affected],
            ),
        )
        self.partitions.forget("market_data")

    def _in_range(self, span: ArchiveRange) -> sql.Composed:
        """A FROM clause of the range's candles (`candles`, with market_data's COLUMNS)."""
        return IN_RANGE.format(
            columns=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
            start=sql.Literal(span.start),
            end=sql.Literal(span.end),
        )

    async def import_(self, manifest_path: Path) -> int:
        manifest = _read_manifest(manifest_path)
        path = _beside(manifest_path, manifest.file)
        if _sha256(path) != manifest.sha256:
            raise ValidationError(f"{path.name}: sha256 does not match its manifest")
        parquet = pq.ParquetFile(path)
        if parquet.metadata.num_rows != manifest.rows:
            raise ValidationError(
                f"{path.name}: {parquet.metadata.num_rows} rows, manifest says {manifest.rows}"
            )
        # archives made before series had a venue have no venue column: theirs is the
        # default (dydx), as in the migration that added it
        present = [c for c in COLUMNS if c in parquet.schema_arrow.names]
        copied = sql.SQL(", ").join(map(sql.Identifier, present))
        columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        async with self.db.transaction() as conn:
            await conn.execute(
                "CREATE TEMP TABLE md_import (LIKE market_data INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            async with (
                conn.cursor() as cur,
                cur.copy(sql.SQL("COPY md_import ({}) FROM STDIN").format(copied)) as copy,
            ):
                for batch in parquet.iter_batches(batch_size=IMPORT_BATCH, columns=present):
                    await self._ensure_months(batch.column("timestamp"))
                    for row in zip(*(column.to_pylist() for column in batch.columns), strict=True):
                        await copy.write_row(row)
            for s in await (await conn.execute(IMPORTED_SERIES)).fetchall():
                series = (s["venue"], s["symbol"], s["timeframe"])
                await conn.execute(LOCK_SERIES, (series_key(*series),))
                end = s["last"] + timedelta(microseconds=1)
                await expand(conn, *series, s["first"], end)  # no candle twice
            inserted = await conn.execute(
                sql.SQL(
                    "INSERT INTO market_data ({0}) SELECT {0} FROM md_import ORDER BY timestamp "
                    "ON CONFLICT DO NOTHING"
                ).format(columns)
            )
            await conn.execute(
                "SELECT market_data_catalog_refresh(venue, symbol, timeframe) FROM "
                "(SELECT DISTINCT venue, symbol, timeframe FROM md_import) s"
            )
        return inserted.rowcount

    async def _ensure_months(self, timestamps: pa.Array) -> None:
        """Native partitions for the months that have rows (not the months between)."""
        if self.mode is TimeSeriesMode.TIMESCALE or len(timestamps) == 0:
            return
        months = pc.unique(pc.floor_temporal(timestamps, unit="month")).to_pylist()
        for month in months:
            await self.partitions.ensure("market_data", month, month)


async def _write_parquet(conn: Connection, candles: sql.Composed, path: Path) -> int:
    """The candles (a FROM clause: MarketArchive._in_range) into a Parquet file."""
    query = sql.SQL("SELECT {} {} ORDER BY venue, symbol, timeframe, timestamp").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), candles
    )
    rows = 0
    with pq.ParquetWriter(path, SCHEMA) as writer:
        async with conn.cursor(name="export") as cur:
            await cur.execute(query)
            while batch := await cur.fetchmany(BATCH):
                writer.write_table(pa.Table.from_pylist([dict(r) for r in batch], SCHEMA))
                rows += len(batch)
    return rows


async def _check_counts(
    conn: Connection, candles: sql.Composed, span: ArchiveRange, path: Path, rows: int
) -> None:
    stored = pq.ParquetFile(path).metadata.num_rows
    cur = await conn.execute(sql.SQL("SELECT count(*) AS n {}").format(candles))
    counted = await cur.fetchone()
    count = int(counted["n"]) if counted else -1
    if stored != rows or count != rows:
        raise ValidationError(
            f"export of {span.label} is incomplete: {stored} in the file, {count} in the table"
        )


def _read_manifest(path: Path) -> Manifest:
    try:
        return Manifest(**json.loads(path.read_text()))
    except FileNotFoundError:
        raise NotFound(f"{path}: no such manifest") from None
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"{path}: not a tradestore archive manifest ({exc})") from None


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
