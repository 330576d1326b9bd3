"""Drift: per tenant, each feature's and the score's population stability index (PSI) and missing share between
the model's training window and the last days of scoring, and whether that calls for a retrain.

PSI = sum over bins of (current - reference) * ln(current / reference), bins cut at the reference's quantiles
(categories: one bin each). Both windows are computed with the one feature query, at cadence cutoffs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from leadradar.config import Settings
from leadradar.features.build import compute_features
from leadradar.features.cutoffs import cadence_cutoffs
from leadradar.features.radar_log import RadarLog
from leadradar.features.registry import build_registry
from leadradar.models.funnel import FunnelModel

SCORE = "score"
# Share floor of an empty bin, so that a bin new in one window gives a large, finite PSI.
EMPTY_BIN = 1e-4
# Reference cutoffs sampled evenly from the training window: enough for stable quantiles, cheap to compute.
REFERENCE_CUTOFFS = 8


def psi(reference: pd.Series, current: pd.Series, bins: int) -> float:
    """Population stability index of `current` against `reference`, missing values left out; NaN if one is empty."""
    ref, cur = reference.dropna(), current.dropna()
    if ref.empty or cur.empty:
        return float("nan")
    if not pd.api.types.is_numeric_dtype(ref) or isinstance(ref.dtype, pd.CategoricalDtype):
        levels = sorted(set(ref.astype(str)) | set(cur.astype(str)))
        r = ref.astype(str).value_counts(normalize=True).reindex(levels, fill_value=0).to_numpy()
        c = cur.astype(str).value_counts(normalize=True).reindex(levels, fill_value=0).to_numpy()
    else:
        r_values, c_values = ref.to_numpy(float), cur.to_numpy(float)
        edges = np.unique(np.quantile(r_values, np.linspace(0, 1, bins + 1)[1:-1]))
        r = np.bincount(np.searchsorted(edges, r_values, side="right"), minlength=len(edges) + 1) / len(r_values)
        c = np.bincount(np.searchsorted(edges, c_values, side="right"), minlength=len(edges) + 1) / len(c_values)
    r, c = np.clip(r, EMPTY_BIN, None), np.clip(c, EMPTY_BIN, None)
    return float(np.sum((c - r) * np.log(c / r)))


def _median(values: pd.Series) -> float | None:
    numeric = pd.to_numeric(values, errors="coerce").dropna()
    return float(numeric.median()) if len(numeric) else None


def drift_table(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], settings: Settings) -> pd.DataFrame:
    """One row per (tenant, column): PSI, missing shares in both windows, medians, and whether it drifted."""
    lc = settings.lifecycle
    rows = []
    for tenant in sorted(set(reference["tenant_id"]) & set(current["tenant_id"])):
        ref, cur = reference[reference["tenant_id"] == tenant], current[current["tenant_id"] == tenant]
        for column in columns:
            value = psi(ref[column], cur[column], lc.psi_bins)
            miss_ref, miss_cur = float(ref[column].isna().mean()), float(cur[column].isna().mean())
            drifted = (np.isfinite(value) and value > lc.psi_threshold) or miss_cur - miss_ref > lc.missing_threshold
            rows.append(
                {
                    "tenant_id": tenant,
                    "column": column,
                    "psi": value,
                    "missing_reference": miss_ref,
                    "missing_current": miss_cur,
                    "median_reference": _median(ref[column]),
                    "median_current": _median(cur[column]),
                    "rows_reference": len(ref),
                    "rows_current": len(cur),
                    "drifted": bool(drifted),
                }
            )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.sort_values(["tenant_id", "psi"], ascending=[True, False], na_position="last", ignore_index=True)


def retrain_reason(table: pd.DataFrame, settings: Settings) -> str | None:
    """Why the drift calls for a retrain (the score drifted, or enough features did), or None."""
    if table.empty:
        return None
    drifted = table[table["drifted"]]
    score = drifted[drifted["column"] == SCORE]
    if not score.empty:
        return f"the score drifted for {', '.join(sorted(score['tenant_id']))} (PSI {score['psi'].max():.2f})"
    per_tenant = drifted.groupby("tenant_id")["column"].apply(list)
    many = per_tenant[per_tenant.map(len) >= settings.lifecycle.drift_features_to_retrain]
    if many.empty:
        return None
    tenant, columns = many.index[0], many.iloc[0]
    return f"{len(columns)} features drifted for {tenant}: {', '.join(columns[:5])}"


@dataclass(frozen=True)
class DriftWindows:
    reference: pd.DataFrame
    current: pd.DataFrame
    columns: list[str]


def drift_windows(log: RadarLog, model: FunnelModel, settings: Settings, now: pd.Timestamp) -> DriftWindows:
    """Features and scores at cutoffs of the model's training window and of the last `drift_days` up to `now`."""
    window = (model.meta_ or {}).get("window") or {}
    fc = settings.features
    first, last = pd.Timestamp(window["first_cutoff"]), pd.Timestamp(window["last_cutoff"])
    trained = cadence_cutoffs(first, last, fc)
    pick = np.unique(np.linspace(0, len(trained) - 1, min(REFERENCE_CUTOFFS, len(trained))).round().astype(int))
    recent = cadence_cutoffs(now - timedelta(days=settings.lifecycle.drift_days), now, fc)
    if not recent:
        recent = [now.tz_convert("UTC").normalize()]
    registry = build_registry(settings)
    frames = []
    for cutoffs in ([trained[i] for i in pick], recent):
        frame = compute_features(
            log.events, log.stages, cutoffs, settings, registry, items=log.items, leads=log.leads, consent=log.consent
        )
        target = model.targets_[model.main_target]
        frame[SCORE] = target.predict(model.matrix(frame)) if len(frame) else []
        frames.append(frame)
    return DriftWindows(frames[0], frames[1], [*model.features, SCORE])


def describe(row: pd.Series, settings: Settings, lang: str = "en") -> str:
    """A drifting column in words: the feature's own sentence with its median before and now."""
    before, now = row["median_reference"], row["median_current"]
    if row["column"] == SCORE:
        return (
            f"中位成交概率 {before:.1%} → {now:.1%}"
            if lang == "zh"
            else f"median close probability {before:.1%} → {now:.1%}"
        )
    registry = build_registry(settings)
    if row["column"] not in registry.names:
        return str(row["column"])
    feature = registry[row["column"]]
    sentence = feature.zh if lang == "zh" else feature.en
    moved = f"{before:g} → {now:g}" if before is not None and now is not None else "?"
    text = sentence.replace("{value}", moved)
    prefix = "中位线索" if lang == "zh" else "the median lead"
    return f"{prefix}: {text}"
