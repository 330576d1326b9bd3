"""Calibration on matured labels: the scores given one horizon ago against the closes that happened since.

By tenant and probability band: leads, mean predicted probability, closes, the realised share with a Wilson
interval, and per tenant the realised expected calibration error (ECE, weighted by leads per band). A model
whose ECE exceeds `lifecycle.calibration_error_threshold` is flagged: people read "35 %" literally.
"""

from __future__ import annotations

from datetime import timedelta
from statistics import NormalDist

import numpy as np
import pandas as pd

from leadradar.config import Settings
from leadradar.serving.store import ScoreStore

ALL = "*"


def wilson(closes: int, leads: int, level: float) -> tuple[float, float]:
    """Wilson score interval of a share: right at 0 and 1 closes, where the normal interval is not."""
    if leads == 0:
        return float("nan"), float("nan")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = closes / leads
    centre = (p + z * z / (2 * leads)) / (1 + z * z / leads)
    half = z * np.sqrt(p * (1 - p) / leads + z * z / (4 * leads * leads)) / (1 + z * z / leads)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def matured_bands(scores: pd.DataFrame, wins: pd.DataFrame, horizon_days: int, settings: Settings) -> pd.DataFrame:
    """Per tenant (and `*` for all) and band: predicted vs realised closes within the horizon after each score.

    `scores`: tenant_id, lead_id, as_of, p_close. `wins`: tenant_id, lead_id, ts (when the lead was won).
    """
    lc = settings.lifecycle
    first_win = wins.groupby(["tenant_id", "lead_id"], as_index=False)["ts"].min()
    frame = scores.merge(first_win, on=["tenant_id", "lead_id"], how="left")
    horizon = pd.Timedelta(days=horizon_days)
    frame["closed"] = (frame["ts"] > frame["as_of"]) & (frame["ts"] <= frame["as_of"] + horizon)
    edges = list(lc.calibration_bands)
    frame["band"] = np.clip(
        np.searchsorted(edges, frame["p_close"].to_numpy(float), side="right") - 1, 0, len(edges) - 2
    )
    rows = []
    groups = [(t, frame[frame["tenant_id"] == t]) for t in sorted(frame["tenant_id"].unique())]
    for tenant, part in [*groups, (ALL, frame)]:
        for band, cell in part.groupby("band"):
            n, k = len(cell), int(cell["closed"].sum())
            lo, hi = wilson(k, n, lc.calibration_level)
            rows.append(
                {
                    "tenant_id": tenant,
                    "band_from": edges[int(band)],
                    "band_to": edges[int(band) + 1],
                    "leads": n,
                    "predicted": float(cell["p_close"].mean()),
                    "expected_closes": float(cell["p_close"].sum()),
                    "closes": k,
                    "realised": k / n,
                    "realised_low": lo,
                    "realised_high": hi,
                }
            )
    return pd.DataFrame(rows)


def calibration_errors(bands: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Per tenant: the realised ECE over its bands, leads, and whether it is flagged."""
    rows = []
    for tenant, part in bands.groupby("tenant_id", sort=True):
        n = part["leads"].sum()
        ece = float((part["leads"] * (part["realised"] - part["predicted"]).abs()).sum() / n) if n else float("nan")
        rows.append(
            {
                "tenant_id": tenant,
                "leads": int(n),
                "ece": ece,
                "flagged": bool(ece > settings.lifecycle.calibration_error_threshold),
            }
        )
    return pd.DataFrame(rows)


def scores_given(store: ScoreStore, tenant_id: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The tenant's stored scores with `start <= as_of < end`, the latest model's run of each as-of."""
    seen: set = set()
    parts = []
    for as_of, version in store.runs(tenant_id):
        when = pd.Timestamp(as_of)
        if start <= when < end and when not in seen:
            seen.add(when)
            parts.append(store.run(tenant_id, as_of, version, ["tenant_id", "lead_id", "as_of", "p_close"]))
    columns = ["tenant_id", "lead_id", "as_of", "p_close"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def matured_week(
    store: ScoreStore, stages: pd.DataFrame, tenants: list[str], now: pd.Timestamp, settings: Settings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The week of scores given one horizon before `now`, judged on the stage history: (bands, errors)."""
    horizon = settings.training.horizon_days
    end = now - timedelta(days=horizon)
    scores = pd.concat([scores_given(store, t, end - timedelta(days=7), end) for t in tenants], ignore_index=True)
    wins = stages[stages["stage"] == settings.funnel.won][["tenant_id", "lead_id", "ts"]]
    if scores.empty:
        return pd.DataFrame(), pd.DataFrame()
    bands = matured_bands(scores, wins, horizon, settings)
    return bands, calibration_errors(bands, settings)
