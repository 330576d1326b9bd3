"""Plots a data scientist would rather look at than read; each returns the PNG path it wrote."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from training.metrics import reliability_table  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def reliability_diagram(y: np.ndarray, curves: dict[str, np.ndarray], path: Path, bins: int = 15) -> Path:
    """Predicted against observed close rate per equal-count bin; the diagonal is perfect calibration."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    top = 0.0
    for name, p in curves.items():
        rows = reliability_table(y, p, bins)
        xs, ys = [r["p_mean"] for r in rows], [r["observed"] for r in rows]
        ax.plot(xs, ys, marker="o", ms=4, label=name)
        top = max(top, max(xs), max(ys))
    top = min(1.0, top * 1.05 + 1e-3)
    ax.plot([0, top], [0, top], color="grey", lw=1, ls="--", label="perfect")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="predicted probability", ylabel="observed rate",
           title="Reliability (test period)")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def roc_plot(y: np.ndarray, curves: dict[str, np.ndarray], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, p in curves.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test period)")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def pr_plot(y: np.ndarray, curves: dict[str, np.ndarray], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, p in curves.items():
        prec, rec, _ = precision_recall_curve(y, p)
        ax.plot(rec, prec, label=name)
    ax.axhline(y.mean(), color="grey", lw=1, ls="--", label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test period)")
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)
