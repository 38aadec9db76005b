"""The CLI starts without the store's heavy dependencies: `--help` and `--version` must
stay quick (bench cli measures them), so importing the CLI loads neither the PostgreSQL
driver nor numpy, pyarrow or pydantic-settings; a command loads them when it runs."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("psycopg", "numpy", "pyarrow", "pandas", "redis", "pydantic_settings", "httpx")


def test_importing_the_cli_loads_no_heavy_module() -> None:
    probe = (
        f"import sys, tradestore.cli.app; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""


def test_version_and_help_answer_without_a_database() -> None:
    env = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none", "PATH": ""}
    for args, expected in ((["--version"], "tradestore 0.1.0"), (["--help"], "market")):
        done = subprocess.run(
            [sys.executable, "-m", "tradestore", *args],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
        assert done.returncode == 0 and expected in done.stdout, done.stderr


def test_the_package_loads_a_name_when_it_is_first_used() -> None:
    probe = (
        "import sys, tradestore; before = 'psycopg' in sys.modules; "
        "tradestore.TradeStore; print(before, 'psycopg' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.split() == ["False", "True"], out.stderr


# Ctrl-C arriving while the command line loads, made deterministic: an import hook raises
# KeyboardInterrupt where the signal would, in the middle of loading the commands.
INTERRUPTED_WHILE_LOADING = """
import sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "tradestore.cli.trading":
            raise KeyboardInterrupt
sys.meta_path.insert(0, Interrupt())
sys.argv = ["tradestore", "--help"]
from tradestore.cli import main
main()
"""


def test_ctrl_c_while_the_command_line_loads_is_a_quiet_exit_130() -> None:
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_WHILE_LOADING],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 130, done.stderr
    assert done.stderr == "error: interrupted\n"
