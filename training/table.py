"""`leadradar train --table`: the same fit, calibration, evaluation and registry on a data scientist's own table.

Numeric and boolean columns are features as they are; text columns with few distinct values
become LightGBM categoricals; free text and timestamps are refused with a message naming them.
A time column gives a time-ordered split, otherwise the split is stratified on the label.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from leadradar.config import Settings
from leadradar.errors import UserError
from leadradar.features.engines import read_parquet
from leadradar.models.funnel import FunnelModel
from leadradar.registry import CHALLENGER
from leadradar.targets import TargetSpec
from leadradar.training import plots
from leadradar.training.fingerprint import DataKey, key_for
from leadradar.training.intervals import bootstrap_intervals
from leadradar.training.metrics import classification_metrics
from leadradar.training.pipeline import TrainResult
from leadradar.training.tracking import RunRecord, record_run

ROW = "_row"
TARGET = "target"


class TableError(UserError, ValueError):
    """The table cannot be trained on as it is; the message names the columns and what to do."""


@dataclass(frozen=True)
class TableColumns:
    numeric: list[str]
    categorical: list[str]

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file, or the folder of Parquet parts `features build --engine spark` writes."""
    suffix = path.suffix.lower()
    if not path.exists():
        raise TableError(f"{path}: no such file")
    try:
        if suffix == ".parquet" or path.is_dir():
            return read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path)
    except Exception as exc:
        raise TableError(f"{path}: cannot be read as {suffix[1:]}: {exc}") from exc
    raise TableError(f"{path}: unsupported file type {suffix or '(none)'}; give a .csv or .parquet table")


def binary_label(frame: pd.DataFrame, label: str) -> pd.Series:
    if label not in frame.columns:
        raise TableError(f"label column {label!r} is not in the table (columns: {list(frame.columns)[:20]})")
    y = frame[label]
    values = set(pd.unique(y.dropna()))
    if not values <= {0, 1}:
        shown = sorted(map(str, values))[:8]
        raise TableError(f"label {label!r} must be 0/1 or true/false; found values {shown}")
    if y.isna().any():
        raise TableError(f"label {label!r} is missing on {int(y.isna().sum())} rows; drop or fill them first")
    return y.astype(int)


def classify_columns(
    frame: pd.DataFrame, label: str, time_column: str | None, settings: Settings, ignore: Sequence[str] = ()
) -> TableColumns:
    """Which columns are numeric features, which categorical; refuse the rest, all named in one error. Columns in
    `ignore` (ids, names, dates a person keeps beside the features) are left out, and must be in the table."""
    max_levels = settings.training.max_category_levels
    absent = [c for c in ignore if c not in frame.columns]
    if absent:
        raise TableError(f"--ignore {absent[0]!r} is not in the table (columns: {list(frame.columns)[:20]})")
    if label in ignore:
        raise TableError(f"--ignore {label!r} is the label: the label cannot be left out")
    numeric, categorical, refused = [], [], []
    for col in frame.columns:
        if col in (label, time_column) or col in ignore:
            continue
        s = frame[col]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            numeric.append(col)
        elif pd.api.types.is_datetime64_any_dtype(s):
            refused.append(
                f"{col!r} is a timestamp: derive numbers from it (e.g. days since), pass it as --time-column or "
                f"leave it out with --ignore {col!r}"
            )
        elif isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(s) or s.dtype == object:
            levels = s.dropna().astype(str).nunique()
            if levels <= max_levels and levels <= max(2, 0.5 * s.notna().sum()):
                categorical.append(col)
            else:
                refused.append(
                    f"{col!r} looks like free text ({levels:,} distinct values in {len(s):,} rows, more than "
                    f"{max_levels} categories): leave it out with --ignore {col!r}, or turn it into numeric "
                    "features first"
                )
        else:
            refused.append(
                f"{col!r} has type {s.dtype}, which is neither numeric, boolean nor categorical: leave it out with "
                f"--ignore {col!r}"
            )
    if refused:
        raise TableError("these columns cannot be features:\n  - " + "\n  - ".join(refused))
    if not numeric and not categorical:
        raise TableError("the table has no feature columns besides the label")
    return TableColumns(numeric, categorical)


def split_rows(frame: pd.DataFrame, y: pd.Series, time_column: str | None, settings: Settings) -> dict[str, np.ndarray]:
    """Row positions of train, validation and test: by time when a time column is given, else stratified."""
    tc = settings.training
    n = len(frame)
    if time_column:
        if time_column not in frame.columns:
            raise TableError(f"time column {time_column!r} is not in the table")
        when = pd.to_datetime(frame[time_column], errors="coerce", utc=True)
        if when.isna().any():
            raise TableError(f"time column {time_column!r} has {int(when.isna().sum())} values that are not times")
        order = np.argsort(when.to_numpy(), kind="stable")
        n_test, n_val = int(round(n * tc.test_fraction)), int(round(n * tc.validation_fraction))
        return {
            "train": order[: n - n_test - n_val],
            "validation": order[n - n_test - n_val : n - n_test],
            "test": order[n - n_test :],
        }
    idx = np.arange(n)
    rest, test = train_test_split(idx, test_size=tc.test_fraction, stratify=y, random_state=tc.seed)
    train, val = train_test_split(
        rest, test_size=tc.validation_fraction / (1 - tc.test_fraction), stratify=y.iloc[rest], random_state=tc.seed
    )
    return {"train": np.sort(train), "validation": np.sort(val), "test": np.sort(test)}


@dataclass
class PreparedTable:
    frame: pd.DataFrame
    columns: TableColumns
    parts: dict[str, np.ndarray]


def labelled_frame(raw: pd.DataFrame, y: pd.Series, cols: TableColumns) -> pd.DataFrame:
    """The feature columns (numeric as float), the label as `TARGET` and each row's position as `ROW`."""
    numeric = raw[cols.numeric].astype(float)  # one conversion: a column at a time fragmented a wide table
    extra = pd.DataFrame({TARGET: y.to_numpy(), ROW: np.arange(len(raw))}, index=raw.index)
    return pd.concat([numeric, raw[cols.categorical], extra], axis=1)  # cols.features: numeric, then categorical


def prepare(
    path: Path, label: str, time_column: str | None, settings: Settings, ignore: Sequence[str] = ()
) -> PreparedTable:
    raw = read_table(path)
    y = binary_label(raw, label)
    cols = classify_columns(raw, label, time_column, settings, ignore)
    frame = labelled_frame(raw, y, cols)
    parts = split_rows(raw, y, time_column, settings)
    for name, rows in parts.items():
        if frame[TARGET].iloc[rows].nunique() < 2:
            raise TableError(f"the {name} part ({len(rows)} rows) has only one label value; the table is too small")
    return PreparedTable(frame, cols, parts)


def table_model_name(path: Path, label: str, model_name: str | None) -> str:
    return model_name or f"table-{path.stem}-{label}".replace(" ", "_")


def table_settings(settings: Settings, name: str) -> Settings:
    """The settings with the registered model name of this table (studies and aliases are per model)."""
    return settings.model_copy(update={"mlflow": settings.mlflow.model_copy(update={"model_name": name})})


def train_from_table(
    path: Path,
    label: str,
    settings: Settings,
    time_column: str | None = None,
    model_name: str | None = None,
    alias: str = CHALLENGER,
    use_tuned: bool = True,
    ignore: Sequence[str] = (),
) -> TrainResult:
    from leadradar.training.tuning import DEFAULTS, tuned_params

    name = table_model_name(path, label, model_name)
    settings = table_settings(settings, name)
    prep = prepare(path, label, time_column, settings, ignore)
    tc = settings.training
    found = tuned_params(settings, TARGET, table_key(prep, label, time_column)) if use_tuned else None
    tuned, source = found if found else ({}, DEFAULTS)
    params = {**tc.lgbm_params, **tuned}
    model = FunnelModel.from_settings(
        [TargetSpec(TARGET, TARGET)], prep.columns.features, prep.columns.categorical, params, tc
    )
    part = {k: prep.frame.iloc[v] for k, v in prep.parts.items()}
    model.fit(part["train"], part["validation"], group=ROW)
    fitted = model.targets_[TARGET]
    results, curves = {}, {}
    for split_name in ("validation", "test"):
        X = model.matrix(part[split_name])
        y = part[split_name][TARGET].to_numpy(int)
        p = fitted.predict(X)
        results[split_name] = classification_metrics(y, p, tc.ece_bins)
        if split_name == "test":
            curves, y_test = {"calibrated": p, "raw LightGBM": fitted.predict_raw(X)}, y
            rows = part[split_name][ROW].astype(str).to_numpy()
            results["test"] |= bootstrap_intervals(
                y, p, rows, None, tc.ece_bins, tc.bootstrap_resamples, tc.bootstrap_level, tc.seed
            )
    tags = {
        "data.kind": "table",
        "data.table": str(path.resolve()),
        "data.label": label,
        "data.time_column": time_column or "",
        "data.ignore": json.dumps(list(ignore), ensure_ascii=False),
        "split.kind": "time" if time_column else "stratified",
        "split.seed": str(tc.seed),
        "params_source": source,
    }
    record = RunRecord(
        tags=tags,
        params={"rows_" + k: len(v) for k, v in prep.parts.items()}
        | {"n_numeric": len(prep.columns.numeric), "n_categorical": len(prep.columns.categorical)}
        | {f"lgbm_{k}": v for k, v in params.items()}
        | {"best_iteration": fitted.best_iteration, "calibration": fitted.calibrator.method}
        | {"min_data_in_leaf": fitted.min_data_in_leaf},
        metrics={f"{part_name}_{k}": v for part_name, m in results.items() for k, v in m.items() if np.isfinite(v)},
        bundle_extra={"test_metrics": results["test"], "label": label, "table": str(path.resolve())},
        version_tags={"label": label},
    )

    def write_files(folder: Path) -> None:
        plots.reliability_diagram(y_test, curves, folder / "plots" / "reliability.png", tc.ece_bins)
        plots.roc_plot(y_test, curves, folder / "plots" / "roc.png")
        plots.pr_plot(y_test, curves, folder / "plots" / "precision_recall.png")

    example = part["test"][prep.columns.features].head(5)
    ref = record_run(settings, model, record, example, write_files, alias, run_name=f"table {path.name}")
    run_id = ref.run_id
    return TrainResult(
        run_id=run_id,
        model_name=ref.name,
        model_version=ref.version,
        alias=alias,
        test_metrics=results["test"],
        validation_metrics=results["validation"],
        window={"split": tags["split.kind"]},
        rows={k: len(v) for k, v in prep.parts.items()},
        definition_hash="",
        calibration=fitted.calibrator.method,
        extra={
            "features": {"numeric": prep.columns.numeric, "categorical": prep.columns.categorical},
            "params_source": source,
        },
    )


def tune_table(
    path: Path,
    label: str,
    settings: Settings,
    time_column: str | None = None,
    model_name: str | None = None,
    n_trials: int | None = 30,
    timeout: float | None = None,
    progress: bool = True,
    fresh: bool = False,
    ignore: Sequence[str] = (),
):
    from leadradar.training.tuning import tune_frames

    settings = table_settings(settings, table_model_name(path, label, model_name))
    prep = prepare(path, label, time_column, settings, ignore)
    train, val = (prep.frame.iloc[prep.parts[k]] for k in ("train", "validation"))
    return tune_frames(
        train,
        val,
        prep.columns.features,
        prep.columns.categorical,
        TARGET,
        settings,
        TARGET,
        table_key(prep, label, time_column),
        n_trials,
        timeout,
        progress,
        fresh,
    )


def table_key(prep: PreparedTable, label: str, time_column: str | None) -> DataKey:
    """The key of a table's rows, with the label and how they are split (time column or stratified)."""
    return key_for(prep.frame, f"split by {time_column}" if time_column else "stratified split", f"label {label}")


def table_holdout(run_tags: dict[str, str], settings: Settings) -> tuple[pd.DataFrame, str]:
    """The test rows of the table a run trained on, split again exactly as then (for promotion)."""
    seeded = settings.model_copy(
        update={"training": settings.training.model_copy(update={"seed": int(run_tags["split.seed"])})}
    )
    ignore = json.loads(run_tags.get("data.ignore") or "[]")  # runs before --ignore recorded none
    prep = prepare(
        Path(run_tags["data.table"]), run_tags["data.label"], run_tags.get("data.time_column") or None, seeded, ignore
    )
    return prep.frame.iloc[prep.parts["test"]], TARGET
