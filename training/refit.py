"""The model served: refit on every labelled row, so it has seen the latest weeks the backtest held out.

Each target keeps the round count the backtest's early stopping chose. Its calibrator is fitted out of
time by rolling-origin cross-fitting: boosters fitted on the cutoffs a horizon before each fold predict
that fold, and the calibrator learns from those predictions, never from rows a booster trained on.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from leadradar.config import Settings
from leadradar.features.trainset import TrainingSet
from leadradar.models.calibration import choose_calibrator
from leadradar.models.funnel import FittedTarget, FunnelModel
from leadradar.targets import Targets
from leadradar.training.splits import rolling_origin
from leadradar.training.uncertainty import fit_interval, fit_tenants


def out_of_time_scores(
    model: FunnelModel, fitted: FittedTarget, rows: pd.DataFrame, horizon_days: int, settings: Settings
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Raw scores of each fold's rows by a booster fitted only on cutoffs a horizon before:
    (raw, y, lead, tenant, folds)."""
    tc = settings.training
    folds = rolling_origin(
        sorted(rows["cutoff"].unique()), horizon_days, tc.refit_calibration_folds, tc.min_fit_cutoffs
    )
    raw, ys, groups, tenants, used = [], [], [], [], 0
    for fold in folds:
        fit = model.rows_of(rows[rows["cutoff"].isin(fold.fit)], fitted.spec)
        held = model.rows_of(rows[rows["cutoff"].isin(fold.predict)], fitted.spec)
        y_fit = fit[fitted.spec.label].to_numpy(int)
        if len(held) == 0 or len(y_fit) == 0 or y_fit.min() == y_fit.max():
            continue
        booster = model.raw_booster(fitted, fit)
        raw.append(np.asarray(booster.predict(model.matrix(held))))
        ys.append(held[fitted.spec.label].to_numpy(int))
        groups.append(held["lead_id"].astype(str).to_numpy())
        tenants.append(held["tenant_id"].astype(str).to_numpy())
        used += 1
    if not used:
        return np.array([]), np.array([], dtype=int), np.array([]), np.array([]), 0
    return np.concatenate(raw), np.concatenate(ys), np.concatenate(groups), np.concatenate(tenants), used


def refit_funnel(ts: TrainingSet, settings: Settings, backtest_model: FunnelModel) -> tuple[FunnelModel, dict]:
    """Every target the backtest fitted, refit on all its labelled rows; what each saw, for the run's record."""
    goal = Targets.from_settings(settings)
    model = FunnelModel(
        backtest_model.targets,
        backtest_model.features,
        backtest_model.categorical,
        backtest_model.params,
        backtest_model.num_boost_round,
        backtest_model.early_stopping_rounds,
        main_target=backtest_model.main_target,
        seed=backtest_model.seed,
        single_thread_below_rows=backtest_model.single_thread_below_rows,
        leaf_rule=backtest_model.leaf_rule,
        isotonic_min_rarer=backtest_model.isotonic_min_rarer,
    )
    model.begin(ts.frame)
    model.skipped_ = dict(backtest_model.skipped_)
    info: dict[str, dict[str, Any]] = {}
    for name, fitted in backtest_model.targets_.items():
        h = goal.horizon_of(fitted.spec)
        rows = ts.frame[ts.frame["cutoff"] + timedelta(days=h) <= ts.data_until]
        raw, y, groups, tenants, folds = out_of_time_scores(model, fitted, rows, h, settings)
        if folds and 0 < y.sum() < len(y):
            calibrator, scores = choose_calibrator(raw, y, groups, model.seed, model.isotonic_min_rarer)
            how = "out_of_time"
        else:  # too short to cross-fit: the backtest's calibrator, fitted on its validation rows
            calibrator, scores, how = fitted.calibrator, fitted.calibration_scores, "backtest_validation"
        rounds, leaf = fitted.best_iteration, fitted.min_data_in_leaf
        refit = model.refit_target(fitted.spec, rows, rounds, calibrator, scores, leaf)
        p_out = calibrator.predict(raw) if len(raw) else raw
        refit.tenants = fit_tenants(p_out, y, tenants, settings) if how == "out_of_time" else fitted.tenants
        if name == model.main_target:
            p_read = refit.tenants.predict(p_out, tenants)[0] if refit.tenants is not None else p_out
            refit.interval = fit_interval(model, refit, rows, p_read, y, settings)
        learned = model.rows_of(rows, fitted.spec)["cutoff"]
        info[name] = {
            "rows": refit.train_rows,
            "positives": refit.train_positives,
            "rounds": refit.best_iteration,
            "cutoff_from": learned.min().isoformat(),
            "cutoff_to": learned.max().isoformat(),
            "calibration": f"{calibrator.method} ({how}, {len(y)} rows in {folds} folds)",
            "own_calibration_tenants": sorted(refit.tenants.calibrators_) if refit.tenants is not None else [],
            "interval": refit.interval.method if refit.interval is not None else "none",
        }
    return model, info
