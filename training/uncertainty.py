"""Fitting what the served model needs to say how sure it is: tenant calibration and the interval per lead."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadradar.config import Settings
from leadradar.models.funnel import FittedTarget, FunnelModel
from leadradar.models.tenants import TenantCalibration
from leadradar.models.uncertainty import BaggedInterval, BinSupportInterval, DispersionInterval, Interval
from leadradar.training.intervals import lead_resamples


def fit_tenants(p: np.ndarray, y: np.ndarray, tenants: np.ndarray, settings: Settings) -> TenantCalibration | None:
    """Per-tenant calibration over out-of-sample pooled probabilities, or None when the settings turn it off."""
    tc = settings.training
    if not tc.tenant_calibration or len(p) == 0:
        return None
    return TenantCalibration(tc.tenant_min_rows, tc.tenant_min_positives).fit(p, y, tenants)


def lead_keys(frame: pd.DataFrame) -> np.ndarray:
    return (frame["tenant_id"].astype(str) + "\x1f" + frame["lead_id"].astype(str)).to_numpy()


def fit_interval(
    model: FunnelModel,
    fitted: FittedTarget,
    rows: pd.DataFrame,
    p_out: np.ndarray,
    y_out: np.ndarray,
    settings: Settings,
) -> Interval | None:
    """The interval the settings ask for: bagged boosters on lead resamples of `rows` (the target's rounds), or the
    support of calibration bins of the out-of-sample probabilities `p_out` with outcomes `y_out`."""
    tc = settings.training
    if tc.interval_method == "dispersion" and len(p_out):
        return DispersionInterval(tc.interval_level, tc.ece_bins, tc.interval_concentration).fit(p_out, y_out)
    if tc.interval_method == "bin_support" and len(p_out):
        return BinSupportInterval(tc.interval_level, tc.ece_bins).fit(p_out, y_out)
    if tc.interval_method != "bagged":
        return None
    target_rows = model.rows_of(rows, fitted.spec).reset_index(drop=True)
    boosters = []
    for sample in lead_resamples(lead_keys(target_rows), tc.interval_bags, tc.seed + 1):
        boosters.append(model.raw_booster(fitted, target_rows.iloc[sample]))
    return BaggedInterval(tc.interval_level).fit(boosters)
