"""Compression of market_data: a TimescaleDB policy (chunks older than 7 days, segmented
by symbol and timeframe, ordered by time; installed by migration 0009) and its ratio.
Plain PostgreSQL has no chunk compression: say so, and point at the column blocks that
maintenance packs closed candle periods into there (marketdata/blocks.py)."""

from __future__ import annotations

from dataclasses import dataclass

from tradestore.db.database import Database
from tradestore.ops.tasks import PlannedAction, Progress
from tradestore.settings import TimeSeriesMode

NOT_AVAILABLE = (
    "chunk compression needs TimescaleDB; on plain PostgreSQL the compact task packs "
    "closed candle periods into column blocks instead (docs/market-data.md)"
)
STATS = """
SELECT coalesce(sum(before_compression_total_bytes), 0) AS before,
       coalesce(sum(after_compression_total_bytes), 0) AS after,
       count(*) FILTER (WHERE compression_status = 'Compressed') AS compressed,
       count(*) AS chunks
  FROM chunk_compression_stats('market_data')
"""
# The chunks due: uncompressed, older than the policy's 7 days, and holding pages (an empty
# one, e.g. truncated, has nothing to compress).
DUE_CHUNKS = """
  FROM timescaledb_information.chunks
 WHERE hypertable_name = 'market_data' AND NOT is_compressed
   AND range_end < now() - INTERVAL '7 days'
   AND pg_relation_size(format('%I.%I', chunk_schema, chunk_name)) > 0
"""
UNCOMPRESSED_OLD = "SELECT count(*)" + DUE_CHUNKS
COMPRESS_OLD_UNCOMPRESSED = (
    "SELECT compress_chunk(format('%I.%I', chunk_schema, chunk_name)::regclass) AS chunk"
    + DUE_CHUNKS
)


@dataclass(frozen=True)
class CompressionStatus:
    available: bool
    message: str
    chunks: int = 0
    compressed_chunks: int = 0
    bytes_before: int = 0
    bytes_after: int = 0

    @property
    def ratio(self) -> float | None:
        return self.bytes_before / self.bytes_after if self.bytes_after else None


class Compression:
    def __init__(self, db: Database, mode: TimeSeriesMode) -> None:
        self.db = db
        self.mode = mode

    async def status(self) -> CompressionStatus:
        if self.mode is not TimeSeriesMode.TIMESCALE:
            return CompressionStatus(False, NOT_AVAILABLE)
        row = await self.db.query_one(STATS)
        assert row is not None
        status = CompressionStatus(
            True,
            "",
            int(row["chunks"]),
            int(row["compressed"]),
            int(row["before"]),
            int(row["after"]),
        )
        ratio = f"{status.ratio:.1f}x" if status.ratio else "n/a"
        return CompressionStatus(
            True,
            f"{status.compressed_chunks}/{status.chunks} chunks compressed, ratio {ratio}",
            status.chunks,
            status.compressed_chunks,
            status.bytes_before,
            status.bytes_after,
        )

    async def compress_now(self) -> int:
        """Compress eligible chunks now instead of waiting for the policy; how many were
        compressed by this call (chunks compressed before are not counted again)."""
        if self.mode is not TimeSeriesMode.TIMESCALE:
            return 0
        rows = await self.db.query(COMPRESS_OLD_UNCOMPRESSED)
        return len(rows)


class CompressionTask:
    name = "compression"

    def __init__(self, compression: Compression) -> None:
        self.compression = compression

    async def plan(self) -> list[PlannedAction]:
        if self.compression.mode is not TimeSeriesMode.TIMESCALE:
            return [PlannedAction("compression", "none", "market_data", NOT_AVAILABLE)]
        n = int(await self.compression.db.query_value(UNCOMPRESSED_OLD))
        return (
            [PlannedAction("compression", "compress", f"{n} chunk(s)", "older than 7 days")]
            if n
            else []
        )

    async def run(self, progress: Progress | None = None) -> list[str]:
        n = await self.compression.compress_now()
        status = await self.compression.status()
        return [f"compression: {n} chunk(s) compressed; {status.message}"] if n else []
