"""`leadradar evaluate --table`: does leadradar's table model help on this table? Cross-validated, beside two baselines.

The same stratified folds score three models: leadradar's (the settings' LightGBM parameters, early
stopping and calibration on a validation share of each training fold, as `train --table` fits it),
LightGBM with its library defaults, and the logistic baseline. Figures are on the pooled out-of-fold
predictions with a bootstrap interval over rows, and per fold as a mean and spread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from leadradar.config import Settings
from leadradar.models.funnel import FunnelModel
from leadradar.targets import TargetSpec
from leadradar.training.baselines import LogisticBaseline
from leadradar.training.intervals import bootstrap_intervals
from leadradar.training.metrics import classification_metrics
from leadradar.training.table import (
    ROW,
    TARGET,
    TableColumns,
    TableError,
    binary_label,
    classify_columns,
    labelled_frame,
    read_table,
)

SCORERS = ("leadradar", "lightgbm_defaults", "logistic")
FIGURES = ("auc", "logloss", "ece", "brier")


@dataclass
class TableEvaluation:
    table: str
    label: str
    rows: int
    positives: int
    folds: int
    scorers: dict[str, dict[str, float]] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def leadradar_fold(train: pd.DataFrame, test: pd.DataFrame, columns: TableColumns, settings: Settings) -> np.ndarray:
    """leadradar's table model on one training fold: early stopping and calibration on a stratified share of it."""
    tc = settings.training
    fit, val = train_test_split(train, test_size=tc.validation_fraction, stratify=train[TARGET], random_state=tc.seed)
    model = FunnelModel.from_settings(
        [TargetSpec(TARGET, TARGET)], columns.features, columns.categorical, tc.lgbm_params, tc
    ).fit(fit, val, group=ROW)
    return model.predict_proba(test)[:, 1]


def lightgbm_defaults_fold(train: pd.DataFrame, test: pd.DataFrame, columns: TableColumns, seed: int) -> np.ndarray:
    """LightGBM as a data scientist first tries it: library defaults, categoricals as pandas categories."""

    def frame(part: pd.DataFrame) -> pd.DataFrame:
        out = part[columns.features].copy()
        for c in columns.categorical:
            out[c] = pd.Categorical(out[c].astype("string"), categories=levels[c])
        return out

    levels = {c: sorted(train[c].dropna().astype(str).unique()) for c in columns.categorical}
    clf = lgb.LGBMClassifier(random_state=seed, verbosity=-1, n_jobs=1)
    clf.fit(frame(train), train[TARGET].to_numpy(int))
    return np.asarray(clf.predict_proba(frame(test)))[:, 1]


def logistic_fold(train: pd.DataFrame, test: pd.DataFrame, columns: TableColumns) -> np.ndarray:
    """The logistic baseline on the numeric columns (it drops categorical ones)."""
    if not columns.numeric:
        return np.full(len(test), train[TARGET].mean())
    est = LogisticBaseline(features=columns.numeric).fit(train, train[TARGET].to_numpy(int))
    return est.predict_proba(test)[:, 1]


def summarise(y: np.ndarray, p: np.ndarray, fold_of: np.ndarray, settings: Settings) -> dict[str, float]:
    """Pooled out-of-fold figures with bootstrap intervals over rows, and each figure's mean and spread over folds."""
    tc = settings.training
    pooled = classification_metrics(y, p, tc.ece_bins)
    out = {k: pooled[k] for k in FIGURES}
    ci = bootstrap_intervals(
        y, p, np.arange(len(y)).astype(str), None, tc.ece_bins, tc.bootstrap_resamples, tc.bootstrap_level, tc.seed
    )
    out |= {k: v for k, v in ci.items() if k.rsplit("_", 1)[0] in FIGURES}
    per_fold = [classification_metrics(y[fold_of == k], p[fold_of == k], tc.ece_bins) for k in np.unique(fold_of)]
    for k in FIGURES:
        values = np.array([m[k] for m in per_fold], dtype=float)
        out[f"{k}_fold_mean"], out[f"{k}_fold_sd"] = float(np.nanmean(values)), float(np.nanstd(values, ddof=1))
    return out


def evaluate_table(
    path: Path, label: str, settings: Settings, folds: int = 5, ignore: Sequence[str] = ()
) -> TableEvaluation:
    """Every scorer on the same stratified folds of the table; figures pooled out of fold, with intervals.
    Columns in `ignore` are left out, as `train --table --ignore` leaves them."""
    raw = read_table(path)
    y_all = binary_label(raw, label)
    columns = classify_columns(raw, label, None, settings, ignore)
    if folds < 2:
        raise TableError(f"--cv {folds}: cross-validation needs at least 2 folds")
    smallest = int(min(y_all.sum(), len(y_all) - y_all.sum()))
    if smallest < folds * 2:
        raise TableError(
            f"label {label!r} has only {smallest} rows of its rarer value; {folds} folds need at least {folds * 2}"
        )
    frame = labelled_frame(raw, y_all, columns)
    y = frame[TARGET].to_numpy(int)
    p = {name: np.zeros(len(frame)) for name in SCORERS}
    fold_of = np.zeros(len(frame), dtype=int)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=settings.training.seed)
    for k, (tr, te) in enumerate(splitter.split(frame, y)):
        train, test = frame.iloc[tr], frame.iloc[te]
        fold_of[te] = k
        p["leadradar"][te] = leadradar_fold(train, test, columns, settings)
        p["lightgbm_defaults"][te] = lightgbm_defaults_fold(train, test, columns, settings.training.seed)
        p["logistic"][te] = logistic_fold(train, test, columns)
    return TableEvaluation(
        table=str(path),
        label=label,
        rows=len(frame),
        positives=int(y.sum()),
        folds=folds,
        scorers={name: summarise(y, p[name], fold_of, settings) for name in SCORERS},
        ignored=list(ignore),
    )
