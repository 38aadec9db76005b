"""What users who run containers get: docker-compose.yml (validated by docker-compose
itself; no container runs here) and the Grafana dashboard, whose Prometheus queries name
metrics the exporter really serves and whose SQL runs against the documented views."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import free_port
from tradestore import TradeStore
from tradestore.ops.alerts import AlertThresholds
from tradestore.ops.exporter import Sources, serve

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "tradestore.json"
needs_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (.ci/run installs it)",
)


def compose(*args: str, file: Path = COMPOSE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", "-f", str(file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=file.parent,
    )


@needs_compose
def test_the_compose_file_is_valid_and_has_every_service(tmp_path: Path) -> None:
    checked = compose("config", "-q")
    assert checked.returncode == 0, checked.stderr
    services = set(compose("config", "--services").stdout.split())
    assert services == {"timescaledb", "redis", "migrate", "exporter", "prometheus", "grafana"}
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("    image: redis:7-alpine", "    imag: x"))
    assert compose("config", "-q", file=broken).returncode != 0  # the check can fail


def test_what_the_compose_file_mounts_is_in_the_repository() -> None:
    mounted = re.findall(r"\./(deploy/[^:\s\"]+)", COMPOSE.read_text())
    assert mounted and all((ROOT / path).exists() for path in mounted), mounted
    assert (ROOT / "Dockerfile").exists()


def _dashboard_queries() -> tuple[set[str], list[str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [t["expr"] for p in panels for t in p["targets"] if "expr" in t]
    sqls = [t["rawSql"] for p in panels for t in p["targets"] if "rawSql" in t]
    return {m for e in exprs for m in re.findall(r"tradestore_\w+", e)}, sqls


async def test_the_dashboard_asks_for_metrics_the_exporter_serves(store: TradeStore) -> None:
    names, _ = _dashboard_queries()
    assert len(names) >= 8
    port = free_port()
    sources = Sources(
        store.monitor, store.db, store.health, AlertThresholds.from_settings(store.settings)
    )
    server = asyncio.ensure_future(serve(sources, "127.0.0.1", port))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(50):
                with contextlib.suppress(httpx.ConnectError):
                    text = (await client.get("/metrics")).text
                    break
                await asyncio.sleep(0.05)
        served = {f.name for f in text_string_to_metric_families(text)}
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
    assert names <= served, names - served


async def test_the_dashboards_sql_runs_on_the_views(store: TradeStore) -> None:
    _, queries = _dashboard_queries()
    assert len(queries) == 3
    for query in queries:
        runnable = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 > now() - interval '1 day'", query)
        await store.db.query(runnable)  # raises if a view or column is missing
