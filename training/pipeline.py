"""`leadradar train` from radar logs: training set, split, fit, calibrate, evaluate, log, register."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leadradar.config import Settings
from leadradar.features.build import KEY
from leadradar.features.radar_log import RadarLog
from leadradar.features.registry import FeatureRegistry, build_registry
from leadradar.features.trainset import TrainingSet, build_training_set
from leadradar.models.funnel import FunnelModel
from leadradar.registry import CHALLENGER, ModelRef
from leadradar.targets import Targets, TargetSpec
from leadradar.training import plots
from leadradar.training.evaluation import EvaluationReport
from leadradar.training.fingerprint import DataKey, log_key
from leadradar.training.metrics import classification_metrics, truth_metrics
from leadradar.training.splits import TimeSplit, time_split
from leadradar.training.tracking import RunRecord, record_run


@dataclass
class TrainResult:
    run_id: str
    model_name: str
    model_version: str
    alias: str
    test_metrics: dict[str, float]
    validation_metrics: dict[str, float]
    window: dict[str, str]
    rows: dict[str, int]
    definition_hash: str
    calibration: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=float, ensure_ascii=False)


def target_split(
    cutoffs: list[pd.Timestamp], horizon_days: int, data_until: pd.Timestamp, settings: Settings
) -> TimeSplit:
    """A time split for one horizon: only cutoffs whose label window ends by `data_until`, gaps of that horizon."""
    complete = [c for c in cutoffs if c + timedelta(days=horizon_days) <= data_until]
    tc = settings.training
    return time_split(complete, horizon_days, tc.validation_fraction, tc.test_fraction)


def lgbm_params(settings: Settings, tuned: dict[str, Any] | None) -> dict[str, Any]:
    return {**settings.training.lgbm_params, **(tuned or {})}


def fit_funnel(
    ts: TrainingSet, settings: Settings, targets: list[TargetSpec], params: dict[str, Any]
) -> tuple[FunnelModel, dict[str, TimeSplit]]:
    """Fit every target on its own horizon's split; a secondary target short of data is skipped, the reason kept."""
    tc = settings.training
    goal = Targets.from_settings(settings)
    model = FunnelModel(
        targets,
        ts.features,
        ts.categorical,
        params,
        tc.num_boost_round,
        tc.early_stopping_rounds,
        main_target=goal.main,
        seed=tc.seed,
        single_thread_below_rows=tc.single_thread_below_rows,
    )
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
    out = classification_metrics(y, p, bins)
    if p_true is not None:
        has = p_true.notna().to_numpy()
        out["truth_coverage"] = float(has.mean())
        if has.any():
            out |= truth_metrics(y[has], p[has], p_true.to_numpy()[has])
    return out


def evaluate_main_target(
    model: FunnelModel, train: pd.DataFrame, test: pd.DataFrame, log: RadarLog, settings: Settings
):
    """The test period in full: model, the four baselines on the same rows, by tenant and stage, direct vs chained."""
    from leadradar.training.baselines import baseline_predictions, fit_baselines
    from leadradar.training.evaluation import evaluate_test_period

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


def sources_tags(log: RadarLog) -> dict[str, str]:
    """Where the training data came from, so promotion can rebuild the same holdout."""
    return {"data.kind": "logs", **{f"data.{part}": str(path) for part, path in log.paths().items()}}


def train_from_logs(
    log: RadarLog,
    settings: Settings,
    until: pd.Timestamp | None = None,
    alias: str = CHALLENGER,
    use_tuned: bool = True,
) -> TrainResult:
    """Train every funnel target on the logs, evaluate the main one, log it all, register the bundle.

    With `use_tuned`, LightGBM parameters come from the best trial of `leadradar tune`, when there is one.
    """
    from leadradar.training.tuning import DEFAULTS, tuned_params

    targets = Targets.from_settings(settings)
    registry = build_registry(settings)
    ts = build_training_set(log, settings, until=until, registry=registry)
    found = tuned_params(settings, targets.main, data_key(log, ts, settings)) if use_tuned else None
    tuned, params_source = found if found else (None, DEFAULTS)
    tc = settings.training
    params = lgbm_params(settings, tuned)
    model, splits = fit_funnel(ts, settings, targets.specs(), params)
    split = splits[model.main_target]
    frame = ts.frame
    masks = split.masks(frame["cutoff"])
    target = model.targets_[model.main_target]
    results: dict[str, dict[str, float]] = {}
    for name in ("validation", "test"):
        part = frame[masks[name]]
        part = part[part[target.spec.label].notna()]
        p = target.predict(model.matrix(part))
        results[name] = evaluate(
            part[target.spec.label].to_numpy(int), p, attach_truth(part, log, f"p_{target.spec.name}"), tc.ece_bins
        )
    test = frame[masks["test"]]
    test = test[test[target.spec.label].notna()]
    train = frame[masks["train"]]
    train = train[train[target.spec.label].notna()]
    report, baseline_scores = evaluate_main_target(model, train, test, log, settings)
    results["test"] = {
        **results["test"],
        **{
            k.removeprefix("test_"): v
            for k, v in report.flat_metrics("test", groups=False).items()
            if k.startswith(("test_baseline_logloss", "test_direct_", "test_chained_"))
        },
    }
    rows = {name: int(m.sum()) for name, m in masks.items()}
    ref = log_and_register(
        settings,
        ts,
        split,
        model,
        results,
        test,
        registry,
        rows,
        alias,
        params,
        {
            **sources_tags(log),
            "params_source": params_source,
        },
        report,
        baseline_scores,
    )
    return TrainResult(
        run_id=ref.run_id,
        model_name=ref.name,
        model_version=ref.version,
        alias=alias,
        test_metrics=results["test"],
        validation_metrics=results["validation"],
        window=ts.window,
        rows=rows,
        definition_hash=ts.definition_hash,
        calibration=target.calibrator.method,
        extra={
            "targets": {n: t.calibrator.method for n, t in model.targets_.items()},
            "skipped": model.skipped_,
            "params_source": params_source,
        },
    )


def tune_from_logs(
    log: RadarLog,
    settings: Settings,
    until: pd.Timestamp | None = None,
    n_trials: int | None = 30,
    timeout: float | None = None,
    progress: bool = True,
    fresh: bool = False,
):
    """Tune the main close model on the same training set and split that `train` would use, in the study
    keyed by that training set's fingerprint (`fresh`: start that study over)."""
    from leadradar.training.tuning import tune_frames

    ts = build_training_set(log, settings, until=until)
    tc = settings.training
    split = target_split(sorted(ts.frame["cutoff"].unique()), tc.horizon_days, ts.data_until, settings)
    masks = split.masks(ts.frame["cutoff"])
    targets = Targets.from_settings(settings)
    label = targets.main_label
    train, val = ts.frame[masks["train"]], ts.frame[masks["validation"]]
    return tune_frames(
        train[train[label].notna()],
        val[val[label].notna()],
        ts.features,
        ts.categorical,
        label,
        settings,
        targets.main,
        data_key(log, ts, settings),
        n_trials,
        timeout,
        progress,
        fresh,
    )


def data_key(log: RadarLog, ts: TrainingSet, settings: Settings) -> DataKey:
    """The key of the data a model learns from: the log's content, the training set's window, the horizon its
    labels look ahead and the feature definitions."""
    return log_key(log, ts.window, f"horizon {settings.training.horizon_days}d", ts.definition_hash)


def log_and_register(
    settings: Settings,
    ts: TrainingSet,
    split: TimeSplit,
    model: FunnelModel,
    results: dict[str, dict[str, float]],
    test: pd.DataFrame,
    registry: FeatureRegistry,
    rows: dict[str, int],
    alias: str,
    params: dict[str, Any],
    data_tags: dict[str, str],
    report: EvaluationReport,
    baseline_scores: dict[str, np.ndarray],
) -> ModelRef:
    """Log everything the run produced; register and alias the model only once all of it is logged."""
    target = model.targets_[model.main_target]
    y_test = test[target.spec.label].to_numpy(int)
    X_test = model.matrix(test)
    p_test = target.predict(X_test)
    window = {f"window.{k}": v for k, v in ts.window.items()}
    record = RunRecord(
        tags={
            **{f"skipped.{n}": why[:250] for n, why in model.skipped_.items()},
            "feature_definition_hash": ts.definition_hash,
            **window,
            **{f"split.{k}": v for k, v in split.describe().items()},
            **data_tags,
        },
        params={
            "horizon_days": settings.training.horizon_days,
            "cadence": settings.features.cadence,
            "n_features": len(ts.features),
            **{f"rows_{k}": v for k, v in rows.items()},
            **{f"lgbm_{k}": v for k, v in params.items()},
            **{f"best_iteration_{n}": t.best_iteration for n, t in model.targets_.items()},
            **{f"calibration_{n}": t.calibrator.method for n, t in model.targets_.items()},
        },
        metrics={
            **{f"validation_{k}": v for k, v in results["validation"].items() if np.isfinite(v)},
            **report.flat_metrics("test"),
        },
        documents={
            "evaluation/test.json": report.to_dict(),
            "evaluation/targets.json": {
                "skipped_targets": model.skipped_,
                "targets": {
                    n: {
                        "best_iteration": t.best_iteration,
                        "train_rows": t.train_rows,
                        "calibration": t.calibrator.method,
                        "calibration_scores": t.calibration_scores,
                    }
                    for n, t in model.targets_.items()
                },
            },
        },
        bundle_extra={
            "definition_hash": ts.definition_hash,
            "window": ts.window,
            "test_metrics": results["test"],
            "horizon_days": settings.training.horizon_days,
            "open_stages": list(settings.funnel.open_stages),
        },
        bundle_files={"items.parquet": data_tags["data.items"]} if data_tags.get("data.items") else {},
        version_tags={"feature_definition_hash": ts.definition_hash, **window},
    )
    features_doc = [
        {"name": f.name, "family": f.family, "window_days": f.window_days, "en": f.en, "zh": f.zh}
        for f in registry.select(ts.features)
    ]

    def write_files(folder: Path) -> None:
        write_plots(folder / "plots", model, y_test, p_test, X_test, baseline_scores, settings)
        (folder / "features.json").write_text(json.dumps(features_doc, ensure_ascii=False, indent=1))

    return record_run(settings, model, record, test[ts.features].head(5), write_files, alias)


def write_plots(
    folder: Path,
    model: FunnelModel,
    y: np.ndarray,
    p: np.ndarray,
    X: np.ndarray,
    baseline_scores: dict[str, np.ndarray],
    settings: Settings,
) -> None:
    """The test period's pictures: ROC, PR, reliability, gains (with baselines), importance, SHAP summary."""
    target = model.targets_[model.main_target]
    curves = {"LightGBM (calibrated)": p, "LightGBM (raw)": target.predict_raw(X)}
    plots.reliability_diagram(y, curves, folder / "reliability.png", settings.training.ece_bins)
    ranked = {"LightGBM": p, **baseline_scores}
    plots.roc_plot(y, ranked, folder / "roc.png")
    plots.pr_plot(y, ranked, folder / "precision_recall.png")
    plots.cumulative_gains(y, ranked, folder / "cumulative_gains.png")
    plots.feature_importance(
        model.features, target.booster.feature_importance("gain"), folder / "feature_importance.png"
    )
    sample = np.random.default_rng(settings.training.seed).choice(len(X), size=min(3000, len(X)), replace=False)
    contrib = np.asarray(target.booster.predict(X[sample], pred_contrib=True))
    plots.shap_summary(model.features, contrib, X[sample], folder / "shap_summary.png", categorical=model.categorical)
