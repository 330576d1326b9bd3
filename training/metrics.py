"""The numbers a model is judged by: ranking, probability quality, and distance from the truth."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

EPS = 1e-6


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 15) -> float:
    """Mean |observed rate - predicted| over equal-count bins, weighted by bin size."""
    order = np.argsort(p, kind="stable")
    chunks = np.array_split(order, bins)
    return float(sum(abs(y[c].mean() - p[c].mean()) * len(c) for c in chunks if len(c)) / len(p))


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int = 15) -> list[dict[str, float]]:
    order = np.argsort(p, kind="stable")
    return [
        {"p_mean": float(p[c].mean()), "observed": float(y[c].mean()), "n": int(len(c))}
        for c in np.array_split(order, bins)
        if len(c)
    ]


def lift_at(y: np.ndarray, p: np.ndarray, fraction: float = 0.1) -> float:
    k = max(1, int(round(len(p) * fraction)))
    top = np.argsort(-p, kind="stable")[:k]
    base = y.mean()
    return float(y[top].mean() / base) if base > 0 else float("nan")


def classification_metrics(y: np.ndarray, p: np.ndarray, bins: int = 15) -> dict[str, float]:
    """ROC AUC, PR AUC, log loss, Brier, ECE and top-decile lift; NaN where one class is absent."""
    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    both = 0 < y.sum() < len(y)
    return {
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "logloss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p, bins),
        "lift_top10": lift_at(y, p, 0.1),
        "base_rate": float(y.mean()),
        "rows": int(len(y)),
    }


def truth_metrics(y: np.ndarray, p: np.ndarray, p_true: np.ndarray) -> dict[str, float]:
    """How far the model is from the simulator's oracle on the same rows."""
    y = np.asarray(y, dtype=int)
    both = 0 < y.sum() < len(y)
    return {
        "oracle_auc": float(roc_auc_score(y, p_true)) if both else float("nan"),
        "oracle_logloss": float(log_loss(y, np.clip(p_true, EPS, 1 - EPS), labels=[0, 1])),
        "mean_abs_err_vs_truth": float(np.mean(np.abs(p - p_true))),
    }
