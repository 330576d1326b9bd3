"""`leadradar train` from radar logs: training set, split, fit, calibrate, evaluate, log, register."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature

from features.build import KEY
from features.registry import build_registry
from features.trainset import Source, TrainingSet, build_training_set
from leadradar.settings import Settings
from models.bundle import ARTIFACT_KEY, ENTRY_POINT
from models.funnel import FunnelModel, TargetSpec
from training import plots
from training.metrics import classification_metrics, truth_metrics
from training.registry import ModelRef, set_alias
from training.splits import TimeSplit, time_split
from training.tracking import code_version, configure_mlflow


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


def close_target(settings: Settings) -> TargetSpec:
    h = settings.training.horizon_days
    return TargetSpec(name=f"close_{h}d", label=f"y_close_{h}d")


def fit_funnel(ts: TrainingSet, split: TimeSplit, settings: Settings, targets: list[TargetSpec]) -> FunnelModel:
    masks = split.masks(ts.frame["cutoff"])
    tc = settings.training
    model = FunnelModel(
        targets, ts.features, ts.categorical, tc.lgbm_params, tc.num_boost_round, tc.early_stopping_rounds,
        seed=tc.seed,
    )
    return model.fit(ts.frame[masks["train"]], ts.frame[masks["validation"]])


def attach_truth(frame: pd.DataFrame, truth: Source | None, column: str) -> pd.Series | None:
    """The oracle probability for each row, where the simulator wrote one."""
    if truth is None:
        return None
    t = pd.read_parquet(truth, columns=[*KEY, column]) if isinstance(truth, (str, Path)) else pd.DataFrame(truth)
    t["cutoff"] = t["cutoff"].astype("datetime64[us, UTC]")
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


def train_from_logs(
    events: Source,
    stages: Source,
    settings: Settings,
    until: pd.Timestamp | None = None,
    items: Source | None = None,
    truth: Source | None = None,
    alias: str = "champion",
    leads: Source | None = None,
) -> TrainResult:
    registry = build_registry(settings)
    ts = build_training_set(events, stages, settings, until=until, items=items, registry=registry, leads=leads)
    tc = settings.training
    split = time_split(sorted(ts.frame["cutoff"].unique()), tc.horizon_days, tc.validation_fraction, tc.test_fraction)
    target = close_target(settings)
    model = fit_funnel(ts, split, settings, [target])
    masks = split.masks(ts.frame["cutoff"])
    test, val = ts.frame[masks["test"]], ts.frame[masks["validation"]]
    fitted = model.targets_[target.name]
    results: dict[str, dict[str, float]] = {}
    curves: dict[str, np.ndarray] = {}
    for name, part in (("validation", val), ("test", test)):
        X = model.matrix(part)
        p = fitted.predict(X)
        y = part[target.label].to_numpy(int)
        results[name] = evaluate(y, p, attach_truth(part, truth, f"p_{target.name}"), tc.ece_bins)
        if name == "test":
            curves = {"calibrated": p, "raw LightGBM": fitted.predict_raw(X)}
            y_test = y
    rows = {name: int(m.sum()) for name, m in masks.items()}
    ref = log_and_register(
        settings, ts, split, model, results, curves, y_test, rows, alias,
    )
    return TrainResult(
        run_id=ref.run_id, model_name=ref.name, model_version=ref.version, alias=alias,
        test_metrics=results["test"], validation_metrics=results["validation"], window=ts.window,
        rows=rows, definition_hash=ts.definition_hash, calibration=fitted.calibrator.method,
    )


def log_and_register(
    settings: Settings,
    ts: TrainingSet,
    split: TimeSplit,
    model: FunnelModel,
    results: dict[str, dict[str, float]],
    curves: dict[str, np.ndarray],
    y_test: np.ndarray,
    rows: dict[str, int],
    alias: str,
) -> ModelRef:
    """Log everything the run produced; register and alias the model only once all of it is logged."""
    configure_mlflow(settings)
    client = MlflowClient()
    registry = build_registry(settings).select(ts.features)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run() as run:
        out = Path(tmp)
        mlflow.set_tags({
            "code_version": code_version(),
            "feature_definition_hash": ts.definition_hash,
            **{f"window.{k}": v for k, v in ts.window.items()},
            **{f"split.{k}": v for k, v in split.describe().items()},
        })
        mlflow.log_params({
            "horizon_days": settings.training.horizon_days,
            "cadence": settings.features.cadence,
            "n_features": len(ts.features),
            **{f"rows_{k}": v for k, v in rows.items()},
            **{f"lgbm_{k}": v for k, v in settings.training.lgbm_params.items()},
            **{f"best_iteration_{n}": t.best_iteration for n, t in model.targets_.items()},
            **{f"calibration_{n}": t.calibrator.method for n, t in model.targets_.items()},
        })
        for split_name, metrics in results.items():
            mlflow.log_metrics({f"{split_name}_{k}": v for k, v in metrics.items() if np.isfinite(v)})
        plots.reliability_diagram(y_test, curves, out / "plots" / "reliability.png", settings.training.ece_bins)
        plots.roc_plot(y_test, curves, out / "plots" / "roc.png")
        plots.pr_plot(y_test, curves, out / "plots" / "precision_recall.png")
        features_doc = [
            {"name": f.name, "family": f.family, "window_days": f.window_days, "en": f.en, "zh": f.zh}
            for f in registry
        ]
        (out / "features.json").write_text(json.dumps(features_doc, ensure_ascii=False, indent=1))
        mlflow.log_artifacts(str(out / "plots"), "plots")
        mlflow.log_artifact(str(out / "features.json"))
        bundle = model.save(out / "bundle", extra={
            "definition_hash": ts.definition_hash,
            "window": ts.window,
            "test_metrics": results["test"],
            "horizon_days": settings.training.horizon_days,
            "code_version": code_version(),
        })
        example = ts.frame[ts.features].head(5)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(ENTRY_POINT),
            artifacts={ARTIFACT_KEY: str(bundle)},
            pip_requirements=["leadradar"],
            signature=infer_signature(example, model.predict_targets(example)),
            input_example=example,
        )
        run_id = run.info.run_id
    mv = mlflow.register_model(info.model_uri, settings.mlflow.model_name, tags={
        "feature_definition_hash": ts.definition_hash, "code_version": code_version(),
        **{f"window.{k}": v for k, v in ts.window.items()},
    })
    ref = ModelRef(settings.mlflow.model_name, str(mv.version), run_id)
    try:
        return set_alias(client, ref, alias)
    except Exception:
        client.delete_model_version(ref.name, ref.version)
        raise
