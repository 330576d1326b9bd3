"""Bootstrap intervals over leads: how sure a backtest figure is, resampling whole leads (never single rows).

A lead scored at several cutoffs gives correlated rows; resampling rows would pretend they are
independent and make the interval too narrow, most of all for a small tenant with few leads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadradar.training.metrics import classification_metrics

# The figures an interval is given for; counts and the base rate are properties of the rows, not of the model.
INTERVAL_METRICS = ("auc", "pr_auc", "logloss", "brier", "ece", "lift_top10", "mean_abs_err_vs_truth")


def lead_resamples(groups: np.ndarray, resamples: int, seed: int) -> list[np.ndarray]:
    """Row positions of `resamples` bootstrap samples: leads drawn with replacement, each bringing all its rows."""
    codes, uniq = pd.factorize(pd.Series(groups).astype(str))
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(uniq))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(resamples):
        drawn = rng.integers(0, len(uniq), len(uniq))
        lengths = counts[drawn]
        offsets = np.repeat(starts[drawn] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        out.append(order[np.arange(lengths.sum()) + offsets])
    return out


def figures(y: np.ndarray, p: np.ndarray, p_true: np.ndarray | None, bins: int) -> dict[str, float]:
    """The backtest figures of one sample: classification metrics and, where the truth is known, the distance to it."""
    out = classification_metrics(y, p, bins)
    if p_true is not None:
        has = ~np.isnan(p_true)
        out["mean_abs_err_vs_truth"] = float(np.mean(np.abs(p[has] - p_true[has]))) if has.any() else float("nan")
    return {k: out[k] for k in INTERVAL_METRICS if k in out}


def bootstrap_intervals(
    y: np.ndarray,
    p: np.ndarray,
    groups: np.ndarray,
    p_true: np.ndarray | None = None,
    bins: int = 15,
    resamples: int = 200,
    level: float = 0.95,
    seed: int = 7,
) -> dict[str, float]:
    """`<metric>_lo` and `<metric>_hi` for every figure, a percentile interval over lead resamples.

    The interval is widened to hold the figure itself where the resamples all fall to one side of it
    (ECE, biased upward by resampling, can do that), so lo <= figure <= hi always holds.
    """
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    truth = None if p_true is None else np.asarray(p_true, dtype=float)
    point = figures(y, p, truth, bins)
    draws: dict[str, list[float]] = {k: [] for k in point}
    for rows in lead_resamples(np.asarray(groups), resamples, seed):
        sample = figures(y[rows], p[rows], None if truth is None else truth[rows], bins)
        for k, v in sample.items():
            draws[k].append(v)
    tail = 100 * (1 - level) / 2
    out: dict[str, float] = {}
    for k, value in point.items():
        values = np.asarray(draws[k], dtype=float)
        values = values[np.isfinite(values)]
        if not np.isfinite(value) or len(values) == 0:
            continue
        out[f"{k}_lo"] = float(min(np.percentile(values, tail), value))
        out[f"{k}_hi"] = float(max(np.percentile(values, 100 - tail), value))
    return out
