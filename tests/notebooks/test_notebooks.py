"""The notebooks: each .ipynb matches its jupytext .py and stores no outputs, and each runs top to bottom.

The .py (jupytext percent format) is the source of truth; after editing either file,
`make notebooks-sync` brings the pair level and clears the .ipynb's outputs.
Execution injects small parameters after the cell
tagged `parameters` (as papermill does) and runs the notebooks in order in one work folder, so
the explain notebook finds the champion the retrain notebook promoted.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
# Small enough that the three notebooks run in about two minutes on 2 cores.
SMALL = {"TENANTS": 2, "LEADS": 2500, "DAYS": 240, "SEED": 11, "N_TRIALS": 3, "TUNE_TIMEOUT_S": 60}
CELL_TIMEOUT_S = 300


def cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, tuple[str, ...]]]:
    """What a reader sees of each cell: its type, its source and its tags (outputs and ids left out)."""
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def parameter_names(nb: nbformat.NotebookNode) -> list[str]:
    """The names the cell tagged `parameters` assigns."""
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", ())]
    assert len(tagged) == 1, f"expected one cell tagged 'parameters', found {len(tagged)}"
    tree = ast.parse(tagged[0].source)
    return [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)]


def inject(nb: nbformat.NotebookNode, values: dict) -> nbformat.NotebookNode:
    """Papermill-style: a cell tagged `injected-parameters` right after the parameters cell overrides them."""
    names = set(parameter_names(nb))
    source = "\n".join(f"{k} = {v!r}" for k, v in values.items() if k in names)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", ()))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    return nb


def execute(source: Path, values: dict, out: Path | None = None) -> tuple[nbformat.NotebookNode, float]:
    """Run a notebook headless on the venv's python3 kernel, from the notebooks folder; raises on a failing cell."""
    nb = inject(jupytext.read(source), values)
    started = time.perf_counter()
    try:
        NotebookClient(
            nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        ).execute()
    finally:
        if out is not None:
            nbformat.write(nb, out)
    return nb, time.perf_counter() - started


def test_there_are_notebooks_to_check():
    assert len(SOURCES) >= 3, f"expected the explore, retrain and explain notebooks in {NOTEBOOKS}"
    orphans = {p.stem for p in NOTEBOOKS.glob("*.ipynb")} - {p.stem for p in SOURCES}
    assert not orphans, f"notebooks without a jupytext .py source: {sorted(orphans)}"
    declared = {name for p in SOURCES for name in parameter_names(jupytext.read(p))}
    assert set(SMALL) <= declared, f"SMALL sets parameters no notebook declares: {sorted(set(SMALL) - declared)}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_ipynb_matches_its_py_and_stores_no_outputs(source: Path):
    paired = source.with_suffix(".ipynb")
    assert paired.exists(), f"{paired.name} is missing; run `jupytext --sync {source.relative_to(NOTEBOOKS.parent)}`"
    stored = nbformat.read(paired, as_version=4)
    assert cells(stored) == cells(jupytext.read(source)), (
        f"{paired.name} differs from {source.name}; run `make notebooks-sync`"
    )
    with_outputs = [i for i, c in enumerate(stored.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not with_outputs, f"{paired.name} stores outputs in cells {with_outputs}; run `make notebooks-sync`"
    parameter_names(stored)


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the notebooks' data and LEADRADAR_HOME, shared in order like a person's session."""
    return tmp_path_factory.mktemp("notebooks")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom_on_small_data(source: Path, work_dir: Path):
    nb, seconds = execute(source, {**SMALL, "WORK_DIR": str(work_dir)}, work_dir / f"{source.stem}.executed.ipynb")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{source.name}: {errors[0].ename}: {errors[0].evalue}"
    print(f"{source.name} ran in {seconds:.0f} s")
