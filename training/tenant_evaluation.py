"""How the pooled model serves each tenant: leave-one-tenant-out (what a new tenant is served) and whether a
tenant's own calibration beats the pooled one on the test period."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from leadradar.config import Settings
from leadradar.errors import TooLittleDataError
from leadradar.features.radar_log import RadarLog
from leadradar.features.trainset import TrainingSet
from leadradar.models.funnel import FunnelModel
from leadradar.targets import Targets
from leadradar.training.backtest import attach_truth, new_model, target_split
from leadradar.training.metrics import classification_metrics
from leadradar.training.uncertainty import fit_tenants


def metric_name(tenant: str) -> str:
    """A tenant id as MLflow accepts it inside a metric name."""
    return re.sub(r"[^0-9A-Za-z_.-]", "_", tenant)[:64]


def _figures(y: np.ndarray, p: np.ndarray, p_true: pd.Series | None, suffix: str) -> dict[str, float]:
    m = classification_metrics(y, p)
    out = {f"logloss{suffix}": m["logloss"], f"auc{suffix}": m["auc"], f"ece{suffix}": m["ece"]}
    if p_true is not None and p_true.notna().any():
        has = p_true.notna().to_numpy()
        out[f"mean_abs_err_vs_truth{suffix}"] = float(np.mean(np.abs(p[has] - p_true.to_numpy()[has])))
    return out


def tenant_figures(
    ts: TrainingSet, settings: Settings, params: dict, backtest_model: FunnelModel, log: RadarLog
) -> dict[str, float]:
    """Test-period figures per tenant, on the time split's rows: `loto_<tenant>_*` from a model fitted without the
    tenant, `..._seen` from the backtest model, and the pooled against the tenant-calibrated log loss overall.

    The backtest model keeps the tenant calibration fitted here on the validation rows (served when refit is off).
    Empty for a single tenant or a history backtested by rolling origin (no time split to hold a tenant out of).
    """
    tc = settings.training
    goal = Targets.from_settings(settings)
    frame, label = ts.frame, goal.main_label
    try:
        split = target_split(sorted(frame["cutoff"].unique()), goal.main_days, ts.data_until, settings)
    except TooLittleDataError:
        return {}
    masks = split.masks(frame["cutoff"])
    known = frame[label].notna().to_numpy()
    spec = backtest_model.targets_[backtest_model.main_target].spec
    seen = backtest_model.targets_[spec.name]
    out: dict[str, float] = {}
    val, test = frame[masks["validation"] & known], frame[masks["test"] & known]
    p_val, p_test = seen.predict(backtest_model.matrix(val)), seen.predict(backtest_model.matrix(test))
    tenants_cal = fit_tenants(p_val, val[label].to_numpy(int), val["tenant_id"].astype(str).to_numpy(), settings)
    if tenants_cal is not None:
        seen.tenants = tenants_cal
        y = test[label].to_numpy(int)
        p_own = tenants_cal.predict(p_test, test["tenant_id"].astype(str).to_numpy())[0]
        out["tenant_calibrated_logloss"] = classification_metrics(y, p_own)["logloss"]
        out["pooled_logloss"] = classification_metrics(y, p_test)["logloss"]
    tenants = sorted(frame["tenant_id"].astype(str).unique())
    if len(tenants) < 2 or not tc.leave_one_tenant_out:
        return out
    new, old = [], []
    for tenant in tenants:
        mine = frame["tenant_id"].astype(str).to_numpy() == tenant
        rows = frame[masks["test"] & known & mine]
        if rows[label].sum() < tc.tenant_min_positives:
            continue
        model = new_model(ts, settings, params)
        model.begin(frame)
        try:
            model.fit_target(spec, frame[masks["train"] & ~mine], frame[masks["validation"] & ~mine])
        except ValueError:
            continue
        y, truth = rows[label].to_numpy(int), attach_truth(rows, log, f"p_{spec.name}")
        name = metric_name(tenant)
        held_out = _figures(y, model.targets_[spec.name].predict(model.matrix(rows)), truth, "")
        with_it = _figures(y, seen.predict(backtest_model.matrix(rows)), truth, "_seen")
        out |= {f"loto_{name}_{k}": v for k, v in (held_out | with_it).items()}
        new.append(held_out["logloss"])
        old.append(with_it["logloss_seen"])
    if new:
        out["loto_mean_logloss"], out["loto_mean_logloss_seen"] = float(np.mean(new)), float(np.mean(old))
        out["loto_tenants"] = float(len(new))
    return out
