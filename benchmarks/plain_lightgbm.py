"""The plain script a data scientist writes first, as a baseline: pandas counts and one LightGBM with early stopping.

Features per (lead, cutoff), from the raw events with `ts <= cutoff` only: counts per event type over 7 and 30
days and all time, dwell sums over 30 days and all time, hours since the last event, and the CRM stage. It
shares nothing with leadradar's feature registry, so a gap between the two is leadradar's choices, not a shared
bug. Early stopping on the latest labelled cutoffs (a time split), then used as is: no refit, no calibration.
"""

from __future__ import annotations

from datetime import timedelta

import lightgbm as lgb
import numpy as np
import pandas as pd

KEY = ["tenant_id", "lead_id"]
WINDOWS_DAYS = (7, 30)
VALIDATION_SHARE = 0.2  # the latest fifth of the labelled cutoffs stops the boosting
PARAMS = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 20, "verbose": -1}


def read_events(path: str) -> pd.DataFrame:
    """The events a plain script reads: one row per event id, UTC timestamps."""
    events = pd.read_parquet(path, columns=["event_id", "tenant_id", "lead_id", "ts", "event_type", "dwell_s"])
    events = events.drop_duplicates(["tenant_id", "event_id"])
    events["ts"] = pd.to_datetime(events["ts"], utc=True)
    events["dwell_s"] = events["dwell_s"].astype(float).fillna(0.0)
    return events


def features_at(events: pd.DataFrame, cutoff: pd.Timestamp, types: list[str]) -> pd.DataFrame:
    """Counts per type over 7/30 days and all time, dwell sums and recency, per lead, as of one cutoff."""
    seen = events[events["ts"] <= cutoff]
    parts = []
    for days in (*WINDOWS_DAYS, None):
        rows = seen if days is None else seen[seen["ts"] > cutoff - timedelta(days=days)]
        suffix = "all" if days is None else f"{days}d"
        counts = rows.groupby([*KEY, "event_type"]).size().unstack("event_type", fill_value=0)
        counts = counts.reindex(columns=types, fill_value=0).add_prefix("n_").add_suffix(f"_{suffix}")
        if days != WINDOWS_DAYS[0]:
            counts[f"dwell_{suffix}"] = rows.groupby(KEY)["dwell_s"].sum()
        parts.append(counts)
    last = seen.groupby(KEY)["ts"].max()
    out = pd.concat(parts, axis=1)
    out["hours_since_last"] = (cutoff - last).dt.total_seconds() / 3600
    return out.reset_index().assign(cutoff=cutoff)


def plain_features(events: pd.DataFrame, rows: pd.DataFrame, stages: list[str]) -> pd.DataFrame:
    """The plain feature matrix for `rows` (tenant_id, lead_id, cutoff, stage), in their order."""
    types = sorted(events["event_type"].unique())
    table = pd.concat([features_at(events, c, types) for c in sorted(rows["cutoff"].unique())], ignore_index=True)
    keys = rows[[*KEY, "cutoff"]].astype({"tenant_id": str, "lead_id": str})
    table = table.astype({"tenant_id": str, "lead_id": str})
    table["cutoff"] = table["cutoff"].astype(keys["cutoff"].dtype)
    merged = keys.merge(table, on=[*KEY, "cutoff"], how="left")
    X = merged.drop(columns=[*KEY, "cutoff"])
    counts = [c for c in X.columns if c != "hours_since_last"]
    X[counts] = X[counts].fillna(0.0)
    X["stage"] = pd.Categorical(rows["stage"].astype(str).to_numpy(), categories=stages).codes.astype(float)
    return X.set_axis(rows.index)


class PlainLightGBM:
    """One LightGBM on the plain features, early-stopped on the latest labelled cutoffs."""

    def fit(self, X: pd.DataFrame, y: np.ndarray, cutoffs: pd.Series) -> PlainLightGBM:
        order = sorted(cutoffs.unique())
        first_val = order[int(len(order) * (1 - VALIDATION_SHARE))]
        val = (cutoffs >= first_val).to_numpy()
        train = lgb.Dataset(X[~val], y[~val])
        valid = lgb.Dataset(X[val], y[val], reference=train)
        self.booster_ = lgb.train(
            PARAMS, train, 2000, valid_sets=[valid], callbacks=[lgb.early_stopping(50, verbose=False)]
        )
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster_.predict(X, num_iteration=self.booster_.best_iteration))
