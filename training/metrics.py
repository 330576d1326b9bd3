"""The numbers a model is judged by: ranking, probability quality, and distance from the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadradar.models.calibration import clipped, log_loss


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 15) -> float:
    """Mean |observed rate - predicted| over equal-count bins, weighted by bin size."""
    order = np.argsort(p, kind="stable")
    chunks = np.array_split(order, bins)
    return float(sum(abs(y[c].mean() - p[c].mean()) * len(c) for c in chunks if len(c)) / len(p))


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int = 15) -> list[dict[str, float]]:
    order = np.argsort(p, kind="stable")
    return [
        {"p_mean": float(p[c].mean()), "observed": float(y[c].mean()), "n": len(c)}
        for c in np.array_split(order, bins)
        if len(c)
    ]


def lift_at(y: np.ndarray, p: np.ndarray, fraction: float = 0.1) -> float:
    k = max(1, int(round(len(p) * fraction)))
    top = np.argsort(-p, kind="stable")[:k]
    base = y.mean()
    return float(y[top].mean() / base) if base > 0 else float("nan")


def ranking_scores(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """ROC AUC and average precision (PR AUC) from one sort, as scikit-learn defines them: tied scores are one
    step of the curve. Its functions check their inputs on every call, most of a bootstrap's 200 resamples."""
    order = np.argsort(p, kind="mergesort")[::-1]
    ranked, hits = p[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # the last row of each distinct score
    tps = np.cumsum(hits, dtype=np.float64)[last]
    fps = (last + 1) - tps
    recall = np.r_[0.0, tps / tps[-1]]  # the true positive rate
    auc = float(np.trapezoid(recall, np.r_[0.0, fps / fps[-1]]))
    return auc, max(0.0, float(np.sum(np.diff(recall) * (tps / (tps + fps)))))


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC (`ranking_scores`), NaN when one class is absent."""
    return ranking_scores(y, p)[0] if 0 < y.sum() < len(y) else float("nan")


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared distance of the probabilities from the 0/1 outcomes."""
    return float(np.mean((y - p) ** 2))


def classification_metrics(y: np.ndarray, p: np.ndarray, bins: int = 15) -> dict[str, float]:
    """ROC AUC, PR AUC, log loss, Brier, ECE and top-decile lift; NaN where one class is absent."""
    y = np.asarray(y, dtype=int)
    p = clipped(p, "classification_metrics")
    both = 0 < y.sum() < len(y)
    auc, pr_auc = ranking_scores(y, p) if both else (float("nan"), float("nan"))
    return {
        "auc": auc,
        "pr_auc": pr_auc,
        "logloss": log_loss(y, p),
        "brier": brier(y, p),
        "ece": expected_calibration_error(y, p, bins),
        "lift_top10": lift_at(y, p, 0.1),
        "base_rate": float(y.mean()),
        "rows": len(y),
    }


def truth_metrics(y: np.ndarray, p: np.ndarray, p_true: np.ndarray) -> dict[str, float]:
    """How far the model is from the simulator's oracle on the same rows."""
    y, p_true = np.asarray(y, dtype=int), np.asarray(p_true, dtype=float)
    return {
        "oracle_auc": roc_auc(y, p_true),
        "oracle_logloss": log_loss(y, p_true),  # clips, and refuses NaN
        "mean_abs_err_vs_truth": float(np.mean(np.abs(p - p_true))),
    }


def precision_recall_at_k(y: np.ndarray, p: np.ndarray, ks: tuple[int, ...] = (50, 100, 500)) -> dict[str, float]:
    """Precision and recall among the k highest-scored rows: what a salesperson calling the top k would find.

    Rows tied with the k-th score count by their share (the expected value when ties are called in
    random order), so a constant score gets the base rate, not an accident of row order. A k larger
    than the rows takes all rows (the key still names the k asked for). Recall is NaN with no positive.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if len(y) != len(p):
        raise ValueError(f"precision_recall_at_k: {len(y)} labels but {len(p)} scores")
    ranked = np.sort(p)[::-1]
    positives = y.sum()
    out: dict[str, float] = {}
    for k in ks:
        if k < 1:
            raise ValueError(f"precision_recall_at_k: k must be >= 1, got {k}")
        n = min(int(k), len(y))
        if n == 0:
            tp = float("nan")
        else:
            edge = ranked[n - 1]
            above, tied = p > edge, p == edge
            tp = y[above].sum() + (n - above.sum()) * y[tied].mean()
        out[f"precision_at_{k}"] = float(tp / n) if n else float("nan")
        out[f"recall_at_{k}"] = float(tp / positives) if positives else float("nan")
    return out


def group_metrics(y: np.ndarray, p: np.ndarray, bins: int = 15) -> dict[str, float]:
    """The per-group numbers: size, positives, base rate, AUC (NaN with one class), log loss, ECE, mean p."""
    y = np.asarray(y, dtype=int)
    p = clipped(p, "group_metrics")
    return {
        "rows": float(len(y)),
        "positives": float(y.sum()),
        "base_rate": float(y.mean()),
        "auc": roc_auc(y, p),
        "logloss": log_loss(y, p),
        "ece": expected_calibration_error(y, p, min(bins, len(y))),
        "mean_p": float(p.mean()),
    }


def metrics_by(
    frame_keys: pd.DataFrame, y: np.ndarray, p: np.ndarray, by: str = "tenant_id", bins: int = 15
) -> dict[str, dict[str, float]]:
    """`group_metrics` for each value of `frame_keys[by]` (e.g. per tenant or per funnel stage), keyed by str.

    Rows whose group is missing are grouped under "<missing>".
    """
    if by not in frame_keys.columns:
        raise KeyError(f"metrics_by: no column {by!r}; columns: {list(frame_keys.columns)[:20]}")
    if not len(frame_keys) == len(y) == len(p):
        raise ValueError(f"metrics_by: frame_keys has {len(frame_keys)} rows, y {len(y)}, p {len(p)}; they must match")
    y, p = np.asarray(y), np.asarray(p)
    groups = frame_keys[by].astype("string").fillna("<missing>").reset_index(drop=True)
    index = groups.groupby(groups, sort=True).indices
    return {str(g): group_metrics(y[rows], p[rows], bins) for g, rows in index.items()}
