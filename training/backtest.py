"""The honest evaluation of a training run: a time split when the history allows, rolling origin when it is short.

Either way every figure comes from cutoffs the scoring model never trained on, a horizon after its last
training label, with a bootstrap interval over leads. Too little data is refused here, naming what is
missing and about how much more history would do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from leadradar.config import Settings
from leadradar.errors import TooLittleDataError
from leadradar.features.build import KEY
from leadradar.features.radar_log import RadarLog
from leadradar.features.trainset import TrainingSet
from leadradar.models.funnel import FunnelModel
from leadradar.targets import Targets, TargetSpec
from leadradar.training.baselines import baseline_predictions, fit_baselines
from leadradar.training.evaluation import EvaluationReport, evaluate_test_period
from leadradar.training.intervals import bootstrap_intervals
from leadradar.training.metrics import classification_metrics, truth_metrics
from leadradar.training.splits import Fold, TimeSplit, rolling_origin, time_split

TIME_SPLIT = "time_split"
ROLLING_ORIGIN = "rolling_origin"


@dataclass
class Backtest:
    """What the backtest measured and the model it measured with (the last one fitted, for the gate and the refit)."""

    kind: str
    model: FunnelModel
    test: pd.DataFrame  # the predicted rows (every fold's), main label known
    p_test: np.ndarray  # the main target's calibrated probability on `test`, from the model of its fold
    raw_test: np.ndarray  # the same before calibration
    results: dict[str, dict[str, float]]  # "validation" and "test" figures of the main target
    report: EvaluationReport
    baseline_scores: dict[str, np.ndarray]
    tags: dict[str, str]  # split.* (the gate's holdout: cutoffs the model never saw) and backtest.*
    rows: dict[str, int]
    folds: list[dict[str, Any]] = field(default_factory=list)


def target_split(
    cutoffs: list[pd.Timestamp], horizon_days: int, data_until: pd.Timestamp, settings: Settings
) -> TimeSplit:
    """A time split for one horizon: only cutoffs whose label window ends by `data_until`, gaps of that horizon."""
    complete = [c for c in cutoffs if c + timedelta(days=horizon_days) <= data_until]
    tc = settings.training
    return time_split(complete, horizon_days, tc.validation_fraction, tc.test_fraction)


def lgbm_params(settings: Settings, tuned: dict[str, Any] | None) -> dict[str, Any]:
    """The settings' LightGBM parameters with tuned ones on top."""
    return {**settings.training.lgbm_params, **(tuned or {})}


def fit_funnel(
    ts: TrainingSet, settings: Settings, targets: list[TargetSpec], params: dict[str, Any]
) -> tuple[FunnelModel, dict[str, TimeSplit]]:
    """Fit every target on its own horizon's split; a secondary target short of data is skipped, the reason kept."""
    tc = settings.training
    goal = Targets.from_settings(settings)
    model = FunnelModel.from_settings(targets, ts.features, ts.categorical, params, tc, goal.main)
    cutoffs = sorted(ts.frame["cutoff"].unique())
    splits: dict[str, TimeSplit] = {}
    model.begin(ts.frame)
    for spec in targets:
        try:
            split = target_split(cutoffs, goal.horizon_of(spec), ts.data_until, settings)
            masks = split.masks(ts.frame["cutoff"])
            model.fit_target(spec, ts.frame[masks["train"]], ts.frame[masks["validation"]])
            splits[spec.name] = split
        except ValueError as exc:
            if spec.name == model.main_target:
                raise
            model.skipped_[spec.name] = str(exc)
    return model, splits


def attach_truth(frame: pd.DataFrame, log: RadarLog, column: str) -> pd.Series | None:
    """The oracle probability for each row, where the simulator wrote one."""
    t = log.truth_of(column)
    if t is None:
        return None
    merged = frame[KEY].merge(t[[*KEY, column]], on=KEY, how="left")
    return pd.Series(merged[column].to_numpy(), index=frame.index)


def evaluate(y: np.ndarray, p: np.ndarray, p_true: pd.Series | None, bins: int) -> dict[str, float]:
    """A period's figures, and the distance to the truth where the simulator wrote one."""
    out = classification_metrics(y, p, bins)
    if p_true is not None:
        has = p_true.notna().to_numpy()
        out["truth_coverage"] = float(has.mean())
        if has.any():
            out |= truth_metrics(y[has], p[has], p_true.to_numpy()[has])
    return out


def evaluate_main_target(
    model: FunnelModel, train: pd.DataFrame, test: pd.DataFrame, log: RadarLog, settings: Settings
) -> tuple[EvaluationReport, dict[str, np.ndarray]]:
    """The test period in full: model, the four baselines on the same rows, by tenant and stage, direct vs chained."""
    target = model.targets_[model.main_target]
    label = target.spec.label
    y = test[label].to_numpy(int)
    p = target.predict(model.matrix(test))
    baselines = baseline_predictions(fit_baselines(train, train[label].to_numpy(int)), test)
    p_true = attach_truth(test, log, f"p_{target.spec.name}")
    chained = model.predict_funnel(test, list(settings.funnel.open_stages)).get("p_close_chained")
    report = evaluate_test_period(
        test,
        y,
        p,
        baselines,
        None if p_true is None else p_true.to_numpy(),
        settings.training.ece_bins,
        p_chained=None if chained is None else chained.to_numpy(),
    )
    return report, baselines


def labelled_cutoffs(ts: TrainingSet, label: str) -> list[pd.Timestamp]:
    return sorted(ts.frame.loc[ts.frame[label].notna(), "cutoff"].unique())


def weeks(days: float) -> str:
    n = max(1, math.ceil(days / 7))
    return f"{n} more week{'s' if n > 1 else ''}"


def check_enough_data(ts: TrainingSet, settings: Settings) -> None:
    """Refuse a history below the stated minimums, naming what is missing and about how much more would do."""
    tc = settings.training
    goal = Targets.from_settings(settings)
    label, h = goal.main_label, goal.main_days
    cutoffs = labelled_cutoffs(ts, label)
    n = len(cutoffs)
    step = (cutoffs[1] - cutoffs[0]).days if n > 1 else 7
    span = f"{cutoffs[0]:%Y-%m-%d} … {cutoffs[-1]:%Y-%m-%d}" if n else "none"
    if n < tc.min_labelled_cutoffs:
        raise TooLittleDataError(
            f"{n} labelled cutoffs ({span}; a cutoff is labelled once its {h}-day window has passed) are fewer "
            f"than the {tc.min_labelled_cutoffs} training needs (training.min_labelled_cutoffs); "
            f"about {weeks((tc.min_labelled_cutoffs - n) * step)} of history would do"
        )
    positives = int(ts.frame[label].sum())
    if positives < tc.min_positives:
        rate = positives / n
        more = (
            f"at about {rate:.1f} a cutoff, about {weeks((tc.min_positives - positives) / rate * step)} of history "
            "would do"
            if positives
            else "check that the stage history records wins (the funnel's won stage)"
        )
        raise TooLittleDataError(
            f"{positives} rows win within {h} days across the {n} labelled cutoffs ({span}), fewer than the "
            f"{tc.min_positives} training needs (training.min_positives); {more}"
        )
    gap_steps = math.ceil(h / step)
    if not rolling_origin(cutoffs, h, 1, tc.min_fit_cutoffs):
        short = gap_steps + tc.min_fit_cutoffs + 1 - n
        raise TooLittleDataError(
            f"{n} labelled cutoffs ({span}) leave no cutoff {h} days after {tc.min_fit_cutoffs} others to test "
            f"on (training.min_fit_cutoffs); about {weeks(short * step)} of history would do"
        )


def with_intervals(
    results: dict[str, float], report: EvaluationReport, test: pd.DataFrame, p: np.ndarray, p_true, settings: Settings
) -> None:
    """Add `<metric>_lo`/`<metric>_hi` over lead resamples to the test figures and the report's model row."""
    tc = settings.training
    label = Targets.from_settings(settings).main_label
    ci = bootstrap_intervals(
        test[label].to_numpy(int),
        p,
        test["lead_id"].astype(str).to_numpy() + "\x1f" + test["tenant_id"].astype(str).to_numpy(),
        None if p_true is None else np.asarray(p_true, dtype=float),
        tc.ece_bins,
        tc.bootstrap_resamples,
        tc.bootstrap_level,
        tc.seed,
    )
    results |= ci
    report.model |= ci


def new_model(ts: TrainingSet, settings: Settings, params: dict[str, Any]) -> FunnelModel:
    """An unfitted funnel model over every target, with the settings' rounds, stopping and seed."""
    goal = Targets.from_settings(settings)
    return FunnelModel.from_settings(goal.specs(), ts.features, ts.categorical, params, settings.training, goal.main)


def split_leads(rows: pd.DataFrame, share: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows split by lead: a lead's rows all train or all validate."""
    codes, uniq = pd.factorize(rows["tenant_id"].astype(str) + "\x1f" + rows["lead_id"].astype(str))
    held = np.random.default_rng(seed).random(len(uniq)) < share
    mask = held[codes]
    return rows[~mask], rows[mask]


def fit_fold(ts: TrainingSet, settings: Settings, params: dict[str, Any], fold: Fold) -> FunnelModel:
    """Every target on the rows whose own label window ended by the fold's first predicted cutoff."""
    goal = Targets.from_settings(settings)
    tc = settings.training
    frame = ts.frame
    model = new_model(ts, settings, params)
    model.begin(frame)
    start = fold.predict[0]
    for spec in goal.specs():
        rows = frame[frame["cutoff"] + timedelta(days=goal.horizon_of(spec)) <= start]
        train, val = split_leads(rows, tc.fold_validation_leads, tc.seed)
        try:
            model.fit_target(spec, train, val)
        except ValueError as exc:
            if spec.name == model.main_target:
                raise
            model.skipped_[spec.name] = str(exc)
    return model


def predict_fold(model: FunnelModel, fold: Fold, ts: TrainingSet, settings: Settings) -> dict[str, Any]:
    """One fold's predicted rows: the model's probabilities (raw, chained) and the baselines fitted on its fit rows."""
    label = Targets.from_settings(settings).main_label
    frame = ts.frame
    test = frame[frame["cutoff"].isin(fold.predict) & frame[label].notna()]
    fit_rows = frame[frame["cutoff"].isin(fold.fit) & frame[label].notna()]
    target = model.targets_[model.main_target]
    X = model.matrix(test)
    chained = model.predict_funnel(test, list(settings.funnel.open_stages)).get("p_close_chained")
    return {
        "model": model,
        "test": test,
        "p": target.predict(X),
        "raw": target.predict_raw(X),
        "chained": None if chained is None else chained.to_numpy(),
        "baselines": baseline_predictions(fit_baselines(fit_rows, fit_rows[label].to_numpy(int)), test),
        "fit_rows": len(fit_rows),
        "fold": fold,
    }


def rolling_origin_backtest(ts: TrainingSet, settings: Settings, params: dict[str, Any], log: RadarLog) -> Backtest:
    """A short history: several time folds, each fitted on what ended a horizon before it, pooled for the figures."""
    tc = settings.training
    goal = Targets.from_settings(settings)
    label = goal.main_label
    folds = rolling_origin(labelled_cutoffs(ts, label), goal.main_days, tc.backtest_folds, tc.min_fit_cutoffs)
    parts: list[dict[str, Any]] = []
    model = None
    for fold in folds:
        try:
            fitted = fit_fold(ts, settings, params, fold)
        except ValueError as exc:
            parts.append({"predict_from": fold.predict[0].isoformat(), "skipped": str(exc)})
            continue
        model = fitted
        parts.append(predict_fold(model, fold, ts, settings))
    done = [part for part in parts if "model" in part]
    if model is None or not done:
        reasons = "; ".join(part["skipped"] for part in parts) or "no fold could be formed"
        raise TooLittleDataError(f"no rolling-origin fold could be fitted ({reasons}); supply a longer history")
    test = pd.concat([part["test"] for part in done])
    p = np.concatenate([part["p"] for part in done])
    raw = np.concatenate([part["raw"] for part in done])
    pooled_chain = [part["chained"] for part in done]
    p_chained = None if any(c is None for c in pooled_chain) else np.concatenate(pooled_chain)
    baselines = {name: np.concatenate([part["baselines"][name] for part in done]) for name in done[0]["baselines"]}
    y = test[label].to_numpy(int)
    p_true = attach_truth(test, log, f"p_{model.main_target}")
    report = evaluate_test_period(
        test,
        y,
        p,
        baselines,
        None if p_true is None else p_true.to_numpy(),
        tc.ece_bins,
        p_chained=p_chained,
    )
    results = {"test": evaluate(y, p, p_true, tc.ece_bins)}
    results["test"] |= {
        k.removeprefix("test_"): v
        for k, v in report.flat_metrics("test", groups=False).items()
        if k.startswith(("test_baseline_logloss", "test_direct_", "test_chained_"))
    }
    last = done[-1]["fold"]
    last_fit = last.fit
    results["validation"] = {}
    with_intervals(results["test"], report, test, p, p_true, settings)
    tags = {
        "backtest.kind": ROLLING_ORIGIN,
        "backtest.folds": str(len(done)),
        "backtest.test_from": done[0]["fold"].predict[0].isoformat(),
        "backtest.test_to": last.predict[-1].isoformat(),
        # The gate's holdout: the last fold, which the last fold's model (kept as the backtest model) never saw.
        "split.train_from": last_fit[0].isoformat(),
        "split.train_to": last_fit[-1].isoformat(),
        "split.test_from": last.predict[0].isoformat(),
        "split.test_to": last.predict[-1].isoformat(),
    }
    folds_doc = [
        {"fit_to": f["fold"].fit[-1].isoformat(), "predict": [c.isoformat() for c in f["fold"].predict]}
        | {"fit_rows": f["fit_rows"], "test_rows": len(f["test"])}
        for f in done
    ]
    return Backtest(
        ROLLING_ORIGIN,
        model,
        test,
        p,
        raw,
        results,
        report,
        baselines,
        tags,
        {"train": int(done[-1]["fit_rows"]), "test": len(test)},
        folds_doc,
    )


def time_split_backtest(ts: TrainingSet, settings: Settings, params: dict[str, Any], log: RadarLog) -> Backtest:
    """Enough history: train, validate (early stopping, calibration) and test in time order, horizon gaps between."""
    tc = settings.training
    model, splits = fit_funnel(ts, settings, Targets.from_settings(settings).specs(), params)
    split = splits[model.main_target]
    frame = ts.frame
    masks = split.masks(frame["cutoff"])
    target = model.targets_[model.main_target]
    label = target.spec.label
    results: dict[str, dict[str, float]] = {}
    for name in ("validation", "test"):
        part = frame[masks[name]]
        part = part[part[label].notna()]
        p = target.predict(model.matrix(part))
        results[name] = evaluate(
            part[label].to_numpy(int), p, attach_truth(part, log, f"p_{target.spec.name}"), tc.ece_bins
        )
    test = frame[masks["test"]]
    test = test[test[label].notna()]
    train = frame[masks["train"]]
    train = train[train[label].notna()]
    report, baseline_scores = evaluate_main_target(model, train, test, log, settings)
    results["test"] |= {
        k.removeprefix("test_"): v
        for k, v in report.flat_metrics("test", groups=False).items()
        if k.startswith(("test_baseline_logloss", "test_direct_", "test_chained_"))
    }
    X_test = model.matrix(test)
    p_test = target.predict(X_test)
    with_intervals(results["test"], report, test, p_test, attach_truth(test, log, f"p_{target.spec.name}"), settings)
    return Backtest(
        TIME_SPLIT,
        model,
        test,
        p_test,
        target.predict_raw(X_test),
        results,
        report,
        baseline_scores,
        {"backtest.kind": TIME_SPLIT, **{f"split.{k}": v for k, v in split.describe().items()}},
        {name: int(m.sum()) for name, m in masks.items()},
    )


def run_backtest(ts: TrainingSet, settings: Settings, params: dict[str, Any], log: RadarLog) -> Backtest:
    """A time split when the main target's history allows one with enough cutoffs to train on, else rolling origin;
    refuse below the minimums."""
    check_enough_data(ts, settings)
    goal = Targets.from_settings(settings)
    try:
        split = target_split(sorted(ts.frame["cutoff"].unique()), goal.main_days, ts.data_until, settings)
    except TooLittleDataError:
        return rolling_origin_backtest(ts, settings, params, log)
    if len(split.train) < settings.training.min_time_split_train_cutoffs:
        return rolling_origin_backtest(ts, settings, params, log)
    return time_split_backtest(ts, settings, params, log)
