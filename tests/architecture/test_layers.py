"""Imports go one way: config ← features ← models ← registry ← training, serving ← cli; no module cycles.

Every import statement counts, also those inside functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Where each import path's files live (pyproject's package-dir), and each layer's rank: lower never imports higher.
FOLDERS = {
    "leadradar": "leadradar",
    "leadradar.features": "features",
    "leadradar.models": "models",
    "leadradar.training": "training",
    "leadradar.serving": "serving",
}
RANK = {"config": 0, "features": 1, "models": 2, "registry": 3, "training": 4, "serving": 4, "cli": 5}
TOP_MODULES = {
    "leadradar": "config",
    "leadradar.config": "config",
    "leadradar.targets": "config",
    "leadradar.errors": "config",
    "leadradar.memory": "config",
    "leadradar.registry": "registry",
    "leadradar.ledger": "registry",
    "leadradar.lifecycle": "cli",
    "leadradar.cli": "cli",
    "leadradar.terminal": "cli",
    "leadradar.demo": "cli",
    "leadradar.feed": "cli",
    "leadradar.__main__": "cli",
}


def layer_of(module: str) -> str | None:
    """A module's layer: its sub-package (features, models, ...) or, for leadradar/*.py, the table above."""
    parts = module.split(".")
    if len(parts) > 2 and parts[1] in RANK:
        return parts[1]
    if len(parts) == 2 and parts[1] in RANK and f"leadradar.{parts[1]}" in FOLDERS:
        return parts[1]
    return TOP_MODULES.get(module)


def package_sources(root: Path) -> dict[str, Path]:
    """Every module of the package with its source file, as the wheel lays them out."""
    sources: dict[str, Path] = {}
    for package, folder in FOLDERS.items():
        base = root / folder
        files = base.glob("*.py") if package == "leadradar" else base.rglob("*.py")
        for path in files:
            rel = path.relative_to(base).with_suffix("").parts
            name = ".".join((package, *rel))
            sources[name.removesuffix(".__init__")] = path
    return sources


def imports_of(path: Path, module: str) -> set[str]:
    """The leadradar modules one source file imports, anywhere in the file."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("leadradar"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.startswith("leadradar"):
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)
    return found


def graph(sources: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the package modules it imports (names that are attributes, not modules, drop out)."""
    return {m: {i for i in imports_of(p, m) if i in sources and i != m} for m, p in sources.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each a cycle to break."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


SOURCES = package_sources(ROOT)
EDGES = graph(SOURCES)


def test_every_module_belongs_to_a_layer() -> None:
    assert SOURCES, "no package sources found"
    assert [m for m in SOURCES if layer_of(m) is None] == []


def test_no_module_imports_a_layer_above_it() -> None:
    upward = [
        f"{m} ({layer_of(m)}) imports {i} ({layer_of(i)})"
        for m, targets in sorted(EDGES.items())
        for i in sorted(targets)
        if RANK[layer_of(i) or ""] > RANK[layer_of(m) or ""]
    ]
    assert upward == []


def test_training_and_serving_do_not_import_each_other() -> None:
    pairs = ((m, i) for m, targets in EDGES.items() for i in targets)
    across = [f"{m} imports {i}" for m, i in pairs if {layer_of(m), layer_of(i)} == {"training", "serving"}]
    assert across == []


def test_there_are_no_import_cycles() -> None:
    assert cycles(EDGES) == []


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_the_cycle_finder_finds_cycles(edges: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(edges) == expected


def test_a_lazy_upward_import_is_seen(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from leadradar.serving.store import ScoreStore\n    return ScoreStore\n")
    assert "leadradar.serving.store" in imports_of(src, "leadradar.features.m")
