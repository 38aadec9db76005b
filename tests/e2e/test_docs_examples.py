"""Every Python example in README.md and docs/ runs as written, on a fresh database
with Redis configured (a subprocess, under a timeout)."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL, create_database, delete_keys, drop_database
from tests.e2e.runner import clean_env

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"```python\n(.*?)```", re.DOTALL)


def python_examples() -> list[tuple[str, str]]:
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for i, match in enumerate(FENCE.finditer(page.read_text())):
            found.append((f"{page.relative_to(ROOT)}#{i + 1}", match.group(1)))
    return found


def test_the_readme_has_a_python_example() -> None:
    assert any(name.startswith("README.md") for name, _ in python_examples())


@pytest.fixture
def fresh_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    name = f"tradestore_doc_{uuid.uuid4().hex[:10]}"
    prefix = f"tsdoc:{uuid.uuid4().hex[:8]}:"
    env = clean_env(
        DATABASE_URL=create_database(name),
        REDIS_URL=REDIS_URL,
        TRADESTORE_REDIS_PREFIX=prefix,
        TRADESTORE_DATA_DIR=str(tmp_path / "data"),
    )
    yield env
    drop_database(name)
    delete_keys(prefix)


@pytest.mark.parametrize(("name", "code"), python_examples(), ids=lambda v: str(v)[:40])
def test_example_runs_as_written(
    name: str, code: str, fresh_env: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "example.py"
    script.write_text(code)
    try:
        result = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            env=fresh_env,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} hung")
    assert result.returncode == 0, f"{name} failed:\n{result.stderr}"
