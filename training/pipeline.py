"""`leadradar train` from radar logs: training set, split, fit, calibrate, evaluate, log, register."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leadradar.config import Settings
from leadradar.errors import TooLittleDataError
from leadradar.features.radar_log import RadarLog
from leadradar.features.registry import FeatureRegistry, build_registry
from leadradar.features.trainset import TrainingSet, build_training_set
from leadradar.models.funnel import FunnelModel
from leadradar.registry import CHALLENGER, ModelRef, configure_mlflow
from leadradar.targets import Targets
from leadradar.training import plots
from leadradar.training.backtest import (
    Backtest,
    check_enough_data,
    lgbm_params,
    run_backtest,
    split_leads,
    target_split,
)
from leadradar.training.backtest import attach_truth as attach_truth
from leadradar.training.backtest import evaluate as evaluate
from leadradar.training.backtest import fit_funnel as fit_funnel
from leadradar.training.fingerprint import DataKey, log_key
from leadradar.training.refit import refit_funnel
from leadradar.training.tenant_evaluation import tenant_figures
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


def sources_tags(log: RadarLog) -> dict[str, str]:
    """Where the training data came from, so promotion can rebuild the same holdout."""
    paths = log.paths()
    source = {"data.source": "files" if "events" in paths else "event store"}
    if log.as_seen is not None:
        source["data.time"] = "as seen" if log.as_seen else "event time"
    return {"data.kind": "logs", **source, **{f"data.{part}": str(path) for part, path in paths.items()}}


def train_from_logs(
    log: RadarLog,
    settings: Settings,
    until: pd.Timestamp | None = None,
    alias: str = CHALLENGER,
    use_tuned: bool = True,
) -> TrainResult:
    """Backtest every funnel target, refit the served model on all labelled rows, log it all, register the bundle.

    With `use_tuned`, LightGBM parameters come from the best trial of `leadradar tune`, when there is one.
    With `training.refit_on_all` off, the backtest model itself is registered and served.
    """
    from leadradar.training.tuning import DEFAULTS, tuned_params

    configure_mlflow(settings)  # an unreachable registry fails here, before minutes of training
    targets = Targets.from_settings(settings)
    registry = build_registry(settings)
    ts = build_training_set(log, settings, until=until, registry=registry)
    found = tuned_params(settings, targets.main, data_key(log, ts, settings)) if use_tuned else None
    tuned, params_source = found if found else (None, DEFAULTS)
    params = lgbm_params(settings, tuned)
    backtest = run_backtest(ts, settings, params, log)
    backtest.results["tenants"] = tenant_figures(ts, settings, params, backtest.model, log)
    served, refit = backtest.model, dict[str, dict[str, Any]]()
    if settings.training.refit_on_all:
        served, refit = refit_funnel(ts, settings, backtest.model)
    ref = log_and_register(
        settings,
        ts,
        backtest,
        served,
        refit,
        registry,
        alias,
        params,
        {**sources_tags(log), "params_source": params_source},
    )
    target = served.targets_[served.main_target]
    return TrainResult(
        run_id=ref.run_id,
        model_name=ref.name,
        model_version=ref.version,
        alias=alias,
        test_metrics=backtest.results["test"],
        validation_metrics=backtest.results["validation"],
        window=ts.window,
        rows=backtest.rows,
        definition_hash=ts.definition_hash,
        calibration=target.calibrator.method,
        extra={
            "targets": {n: t.calibrator.method for n, t in served.targets_.items()},
            "skipped": served.skipped_,
            "backtest": {"kind": backtest.kind, "folds": backtest.folds},
            "served_model": "refit" if refit else "backtest",
            "refit": refit.get(served.main_target, {}),
            "params_source": params_source,
            "tenants": backtest.results["tenants"],
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
    keyed by that training set's fingerprint (`fresh`: start that study over).

    A history too short for a time split is tuned on its labelled rows split by lead, as a rolling-origin fold is.
    """
    from leadradar.training.tuning import tune_frames

    ts = build_training_set(log, settings, until=until)
    tc = settings.training
    targets = Targets.from_settings(settings)
    label = targets.main_label
    try:
        split = target_split(sorted(ts.frame["cutoff"].unique()), tc.horizon_days, ts.data_until, settings)
    except TooLittleDataError:
        check_enough_data(ts, settings)
        train, val = split_leads(ts.frame[ts.frame[label].notna()], tc.fold_validation_leads, tc.seed)
    else:
        masks = split.masks(ts.frame["cutoff"])
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
    backtest: Backtest,
    served: FunnelModel,
    refit: dict[str, dict[str, Any]],
    registry: FeatureRegistry,
    alias: str,
    params: dict[str, Any],
    data_tags: dict[str, str],
) -> ModelRef:
    """Log the backtest and the served model; register and alias it only once all of it is logged.

    A refit model carries the backtest model in its bundle (`backtest/`), for the promotion gate.
    """
    model, test, results = backtest.model, backtest.test, backtest.results
    y_test = test[model.targets_[model.main_target].spec.label].to_numpy(int)
    window = {f"window.{k}": v for k, v in ts.window.items()}
    main_refit = refit.get(served.main_target, {})
    refit_tags = {f"refit.{k}": str(v) for k, v in main_refit.items() if k.startswith("cutoff_")}
    record = RunRecord(
        tags={
            **{f"skipped.{n}": why[:250] for n, why in model.skipped_.items()},
            "feature_definition_hash": ts.definition_hash,
            **window,
            **backtest.tags,
            "served_model": "refit" if refit else "backtest",
            **refit_tags,
            **data_tags,
        },
        params={
            "horizon_days": settings.training.horizon_days,
            "cadence": settings.features.cadence,
            "consent_required": settings.privacy.consent_required,
            "n_features": len(ts.features),
            "backtest_kind": backtest.kind,
            **{f"rows_{k}": v for k, v in backtest.rows.items()},
            **{f"lgbm_{k}": v for k, v in params.items()},
            **{f"best_iteration_{n}": t.best_iteration for n, t in model.targets_.items()},
            **{f"min_data_in_leaf_{n}": t.min_data_in_leaf for n, t in model.targets_.items()},
            **{f"calibration_{n}": t.calibrator.method for n, t in served.targets_.items()},
            **{f"refit_{k}_{n}": v for n, info in refit.items() for k, v in info.items() if k in ("rows", "rounds")},
        },
        metrics={
            **{f"validation_{k}": v for k, v in results["validation"].items() if np.isfinite(v)},
            **backtest.report.flat_metrics("test"),
            **{f"test_{k}": v for k, v in results.get("tenants", {}).items() if np.isfinite(v)},
        },
        documents={
            "evaluation/test.json": backtest.report.to_dict(),
            "evaluation/backtest.json": {"kind": backtest.kind, "folds": backtest.folds, "tags": backtest.tags},
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
                "refit": refit,
            },
        },
        bundle_extra={
            "definition_hash": ts.definition_hash,
            "window": ts.window,
            "test_metrics": results["test"],
            "horizon_days": settings.training.horizon_days,
            "open_stages": list(settings.funnel.open_stages),
            "served_model": "refit" if refit else "backtest",
            "refit": refit,
        },
        bundle_files={"items.parquet": data_tags["data.items"]} if data_tags.get("data.items") else {},
        version_tags={"feature_definition_hash": ts.definition_hash, **window, **refit_tags},
        companions={"backtest": model} if refit else {},
    )
    features_doc = [
        {"name": f.name, "family": f.family, "window_days": f.window_days, "en": f.en, "zh": f.zh}
        for f in registry.select(ts.features)
    ]

    def write_files(folder: Path) -> None:
        write_plots(folder / "plots", model, y_test, backtest, settings)
        (folder / "features.json").write_text(json.dumps(features_doc, ensure_ascii=False, indent=1))

    return record_run(settings, served, record, test[ts.features].head(5), write_files, alias)


def write_plots(folder: Path, model: FunnelModel, y: np.ndarray, backtest: Backtest, settings: Settings) -> None:
    """The backtest's pictures: ROC, PR, reliability, gains (with baselines), importance, SHAP summary."""
    target = model.targets_[model.main_target]
    p, baseline_scores = backtest.p_test, backtest.baseline_scores
    X = model.matrix(backtest.test)
    curves = {"LightGBM (calibrated)": p, "LightGBM (raw)": backtest.raw_test}
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
