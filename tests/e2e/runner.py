"""Where the installed `tradestore` executable is, and how long a command may take."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

TIMEOUT_S = 120.0  # a command slower than this is treated as hung


def tradestore_executable() -> str:
    """The console script installed beside this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "tradestore"
    if beside.exists():
        return str(beside)
    found = shutil.which("tradestore")
    if found is None:
        pytest.fail("the tradestore executable is not installed (pip install -e .)")
    return found
