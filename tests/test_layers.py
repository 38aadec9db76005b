"""The import graph of tradestore: no cycles (any import, lazy or type-only), and no lower layer
reaching up to the TradeStore facade, not even for a type: jobs, repositories and
services take the narrow parts they use."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
FACADE = "tradestore.store"
ABOVE_THE_FACADE = (
    "tradestore",
    "tradestore.store",
    "tradestore.sync",  # the blocking form of the facade
    "tradestore.cli",
    "tradestore.demo",
)


def modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "tradestore").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        found[name] = path
    return found


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """The tradestore modules `path` imports when it is imported (not in functions,
    classes or TYPE_CHECKING blocks)."""
    out: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
                for alias in sub.names:
                    full = f"{sub.module}.{alias.name}"
                    out.add(full if full in known else sub.module)
            elif isinstance(sub, ast.Import):
                out.update(alias.name for alias in sub.names)
    return {name for name in out if name in known}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, known) - {name} for name, path in known.items()}


def cycle_from(start: str, edges: dict[str, set[str]]) -> list[str] | None:
    """A path start -> ... -> start, if there is one (depth first, iterative)."""
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in edges[node]:
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def test_the_graph_is_read() -> None:
    edges = graph()
    known = modules()
    assert len(edges) > 50 and "tradestore.errors" in edges["tradestore.store"]
    assert FACADE in every_import_of(known["tradestore"], known)  # the package exports it


def test_no_import_cycles() -> None:
    """Not even through an import inside a function or for a type only: a lazy import
    that dodges a cycle is still a cycle in the design."""
    known = modules()
    edges = {name: every_import_of(path, known) - {name} for name, path in known.items()}
    cycles = [c for c in (cycle_from(name, edges) for name in sorted(edges)) if c]
    assert cycles == [], " | ".join(" -> ".join(c) for c in cycles[:3])


def test_no_lower_layer_imports_the_facade() -> None:
    edges = graph()
    lower = lower_layers(edges)
    reaching_up = sorted(name for name in lower if FACADE in edges[name])
    assert reaching_up == []
    known = modules()
    for_types = sorted(name for name in lower if FACADE in every_import_of(known[name], known))
    assert for_types == []


def lower_layers(edges: dict[str, set[str]]) -> set[str]:
    return {
        name
        for name in edges
        if not any(name == top or name.startswith(f"{top}.") for top in ABOVE_THE_FACADE[1:])
        and name != "tradestore"
    }


def every_import_of(path: Path, known: dict[str, Path]) -> set[str]:
    """The tradestore modules `path` names in any import, TYPE_CHECKING blocks and
    function bodies included."""
    out: set[str] = set()
    for sub in ast.walk(ast.parse(path.read_text())):
        if isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
            out.add(sub.module)
        elif isinstance(sub, ast.Import):
            out.update(alias.name for alias in sub.names)
    return {name for name in out if name in known}


def test_the_public_names_are_importable_from_the_package() -> None:
    import tradestore

    missing = [name for name in tradestore.__all__ if not hasattr(tradestore, name)]
    assert missing == []
    from tradestore import CandleFrame, NewOrder, Order, Timeframe, TradeFilters

    assert {CandleFrame.__name__, NewOrder.__name__, Order.__name__} == {
        "CandleFrame",
        "NewOrder",
        "Order",
    }
    assert Timeframe("1h") is Timeframe.H1 and TradeFilters().__class__.__name__ == "TradeFilters"
