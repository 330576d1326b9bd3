"""Tenants and uncertainty (issue 14, items 5 and 6), on a multi-tenant simulation with an exact truth.

1. One pooled model, then (a) as is, (b) with a tenant-level calibration fitted on the validation period,
   (c) with the tenant as a categorical feature: test log loss, ECE per tenant, mean |p̂ − p_true|.
2. The 90 % interval around each test probability, (a) from boosters refit on lead bootstrap samples,
   (b) from the support of the calibration bin: how often it holds the simulator's true probability
   (nominal 0.90), and how wide it is.

Same rows, same split, same parameters for every variant. Writes benchmarks/results/quality_tenants.json;
passes or fails nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import write_results
from benchmarks.datasets import dataset

WORLD = {"tenants": 4, "leads": 12_000, "days": 365, "tenant_offset_sd": 0.5, "seed": 21}
LEVEL = 0.9
BAGS = 8


def per_tenant_ece(frame: pd.DataFrame, y: np.ndarray, p: np.ndarray) -> float:
    from leadradar.training.metrics import expected_calibration_error

    tenants = frame["tenant_id"].astype(str).to_numpy()
    return float(
        np.mean([expected_calibration_error(y[tenants == t], p[tenants == t], 10) for t in np.unique(tenants)])
    )


def figures(frame: pd.DataFrame, y: np.ndarray, p: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    from leadradar.training.metrics import classification_metrics

    m = classification_metrics(y, p)
    has = ~np.isnan(truth)
    return {
        "logloss": m["logloss"],
        "auc": m["auc"],
        "ece": m["ece"],
        "ece_per_tenant": per_tenant_ece(frame, y, p),
        "mean_abs_err_vs_truth": float(np.mean(np.abs(p[has] - truth[has]))),
    }


def coverage(lo: np.ndarray, hi: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    has = ~np.isnan(truth)
    return {
        "coverage": float(np.mean((lo[has] <= truth[has]) & (truth[has] <= hi[has]))),
        "mean_width": float(np.mean(hi - lo)),
    }


def run(data_dir: Path) -> dict:
    from leadradar.config import Settings
    from leadradar.features.radar_log import RadarLog
    from leadradar.features.trainset import build_training_set
    from leadradar.models.tenants import TenantCalibration
    from leadradar.models.uncertainty import BaggedInterval, BinSupportInterval
    from leadradar.targets import Targets
    from leadradar.training.backtest import attach_truth, fit_funnel, lgbm_params
    from leadradar.training.intervals import lead_resamples
    from leadradar.training.uncertainty import lead_keys

    settings = Settings(
        home=Path(tempfile.mkdtemp(prefix="leadradar-bench-tenants-")),
        training={"horizons_days": (30,), "transition_models": False},
    )
    log = RadarLog.from_dir(data_dir)
    ts = build_training_set(log, settings)
    goal = Targets.from_settings(settings)
    spec = next(s for s in goal.specs() if s.name == goal.main)
    params = lgbm_params(settings, None)
    model, splits = fit_funnel(ts, settings, [spec], params)
    frame = ts.frame
    masks = splits[spec.name].masks(frame["cutoff"])
    known = frame[spec.label].notna().to_numpy()
    train, val, test = (frame[masks[k] & known] for k in ("train", "validation", "test"))
    y_val, y = val[spec.label].to_numpy(int), test[spec.label].to_numpy(int)
    truth = attach_truth(test, log, f"p_{spec.name}").to_numpy(dtype=float)
    target = model.targets_[spec.name]
    p_val, p = target.predict(model.matrix(val)), target.predict(model.matrix(test))
    out: dict[str, dict] = {"pooled": figures(test, y, p, truth)}

    tc = settings.training
    tenants = TenantCalibration(tc.tenant_min_rows, tc.tenant_min_positives)
    tenants.fit(p_val, y_val, val["tenant_id"].astype(str).to_numpy())
    p_own, pooled = tenants.predict(p, test["tenant_id"].astype(str).to_numpy())
    out["tenant_calibration"] = figures(test, y, p_own, truth) | {"pooled_share": float(pooled.mean())}

    with_tenant = frame.assign(tenant_feature=frame["tenant_id"].astype("category"))
    ts_tenant = replace(
        ts,
        frame=with_tenant,
        features=[*ts.features, "tenant_feature"],
        categorical=[*ts.categorical, "tenant_feature"],
    )
    model_t, _ = fit_funnel(ts_tenant, settings, [spec], params)
    test_t = with_tenant[masks["test"] & known]
    out["tenant_feature"] = figures(test, y, model_t.targets_[spec.name].predict(model_t.matrix(test_t)), truth)

    started = time.perf_counter()
    rows = model.rows_of(train, spec).reset_index(drop=True)
    bags = [
        model.raw_booster(target, rows.iloc[sample]) for sample in lead_resamples(lead_keys(rows), BAGS, tc.seed + 1)
    ]
    bag_seconds = time.perf_counter() - started
    X = model.matrix(test)
    lo, hi = BaggedInterval(LEVEL).fit(bags).predict(X, p, target.calibrator.predict)
    intervals = {"bagged": coverage(lo, hi, truth) | {"fit_seconds": round(bag_seconds, 1), "bags": BAGS}}
    bins = BinSupportInterval(LEVEL, tc.ece_bins).fit(p_val, y_val)
    lo, hi = bins.predict(X, p)
    intervals["bin_support"] = coverage(lo, hi, truth)
    return {
        "tenants": out,
        "intervals": intervals,
        "rows": {"train": len(train), "validation": len(val), "test": len(test)},
        "level": LEVEL,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    sim = dataset(WORLD)
    result = run(sim.dir)
    flat = {
        **{f"{variant}_{k}": v for variant, figs in result["tenants"].items() for k, v in figs.items()},
        **{f"interval_{method}_{k}": v for method, figs in result["intervals"].items() for k, v in figs.items()},
    }
    path = write_results("quality_tenants", flat, {"world": WORLD, "rows": result["rows"], "level": LEVEL})
    print(path)
    for k, v in flat.items():
        print(f"{k:45s} {v}")


if __name__ == "__main__":
    main()
