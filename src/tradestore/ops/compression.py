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
# The chunks due: uncompressed, older than the policy's 7 days, and holding rows (the
# compaction's next round drops the ones it emptied, docs/market-data.md: compressing them
# first would be work for nothing). The probe goes through the hypertable, whose runtime
# chunk exclusion reads that chunk alone.
DUE_CHUNKS = """
  FROM timescaledb_information.chunks c
 WHERE hypertable_name = 'market_data' AND NOT is_compressed
   AND range_end < now() - INTERVAL '7 days'
   AND EXISTS (SELECT 1 FROM market_data m
                WHERE m.timestamp >= c.range_start AND m.timestamp < c.range_end)
"""
UNCOMPRESSED_OLD = "SELECT count(*)" + DUE_CHUNKS
# listed first, compressed one by one: compress_chunk cannot run in a statement that
# also reads the chunk (the probe)
DUE_CHUNK_NAMES = "SELECT format('%I.%I', chunk_schema, chunk_name) AS chunk" + DUE_CHUNKS
COMPRESS_CHUNK = "SELECT compress_chunk(%s::regclass, if_not_compressed => TRUE)"


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
        due = await self.db.query(DUE_CHUNK_NAMES)
        for row in due:
            await self.db.execute(COMPRESS_CHUNK, (row["chunk"],))
        return len(due)


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
