"""Plots a data scientist would rather look at than read; each returns the PNG path it wrote."""

from __future__ import annotations

from pathlib import Path

import matplotlib.cm
import matplotlib.colors
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from leadradar.training.metrics import reliability_table


def _figure(figsize: tuple[float, float]):
    """A figure without pyplot, so importing this module never changes anyone's matplotlib backend."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def reliability_diagram(y: np.ndarray, curves: dict[str, np.ndarray], path: Path, bins: int = 15) -> Path:
    """Predicted against observed close rate per equal-count bin; the diagonal is perfect calibration."""
    fig, ax = _figure(figsize=(5.5, 5))
    top = 0.0
    for name, p in curves.items():
        rows = reliability_table(y, p, bins)
        xs, ys = [r["p_mean"] for r in rows], [r["observed"] for r in rows]
        ax.plot(xs, ys, marker="o", ms=4, label=name)
        top = max(top, max(xs), max(ys))
    top = min(1.0, top * 1.05 + 1e-3)
    ax.plot([0, top], [0, top], color="grey", lw=1, ls="--", label="perfect")
    ax.set(
        xlim=(0, top),
        ylim=(0, top),
        xlabel="predicted probability",
        ylabel="observed rate",
        title="Reliability (test period)",
    )
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def roc_plot(y: np.ndarray, curves: dict[str, np.ndarray], path: Path) -> Path:
    fig, ax = _figure(figsize=(5.5, 5))
    for name, p in curves.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test period)")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def pr_plot(y: np.ndarray, curves: dict[str, np.ndarray], path: Path) -> Path:
    fig, ax = _figure(figsize=(5.5, 5))
    for name, p in curves.items():
        prec, rec, _ = precision_recall_curve(y, p)
        ax.plot(rec, prec, label=name)
    ax.axhline(y.mean(), color="grey", lw=1, ls="--", label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test period)")
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def gains_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(share of leads contacted, share of wins captured), best-scored first, from (0, 0) to (1, 1).

    Rows with equal scores form one step, drawn as a straight line: the expected curve when ties are
    called in random order (a constant score gives the diagonal, not an artefact of row order).
    """
    y = np.asarray(y, dtype=float)
    _, group = np.unique(-np.asarray(p, dtype=float), return_inverse=True)
    rows = np.bincount(group)
    wins = np.bincount(group, weights=y)
    contacted = np.concatenate([[0.0], np.cumsum(rows)]) / max(len(y), 1)
    captured = np.concatenate([[0.0], np.cumsum(wins)]) / max(y.sum(), 1.0)
    return contacted, captured


def cumulative_gains(y: np.ndarray, curves: dict[str, np.ndarray], path: Path) -> Path:
    """Share of wins captured against share of leads contacted, best first; the diagonal is calling at random."""
    fig, ax = _figure(figsize=(5.5, 5))
    for name, p in curves.items():
        x, g = gains_curve(y, p)
        at10 = float(np.interp(0.1, x, g))
        ax.plot(x, g, label=f"{name} (top 10 %: {at10:.0%} of wins)")
    x, g = gains_curve(y, np.asarray(y, dtype=float))
    ax.plot(x, g, color="black", lw=1, ls=":", label="perfect")
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="random")
    ax.axvline(0.1, color="grey", lw=0.6, alpha=0.5)
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="share of leads contacted (highest score first)",
        ylabel="share of wins captured",
        title="Cumulative gains (test period)",
    )
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.legend(loc="lower right", fontsize=7)
    return _save(fig, path)


def feature_importance(names: list[str], gains: np.ndarray, path: Path, top: int = 25) -> Path:
    """LightGBM gain importance as the share of the total gain, largest at the top."""
    gains = np.asarray(gains, dtype=float)
    if len(names) != len(gains):
        raise ValueError(f"feature_importance: {len(names)} names for {len(gains)} gains")
    total = gains.sum()
    share = gains / total if total > 0 else np.zeros_like(gains)
    order = np.argsort(-share, kind="stable")[:top][::-1]
    fig, ax = _figure(figsize=(7, 1.2 + 0.28 * len(order)))
    ax.barh(np.arange(len(order)), share[order], color="#4c72b0")
    ax.set_yticks(np.arange(len(order)), [names[i] for i in order], fontsize=8)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    shown = share[order].sum()
    ax.set(
        xlabel="share of total split gain",
        title=f"Feature importance (gain), top {len(order)} of {len(names)}: {shown:.0%} of the gain",
    )
    ax.title.set_fontsize(10)
    return _save(fig, path)


# Blue (low) through purple to red (high), as in the shap package; no grey in it, so grey can mean missing.
SHAP_COLOURS = matplotlib.colors.LinearSegmentedColormap.from_list("shap", ["#1e88e5", "#7c3aed", "#ff0052"])
MISSING_COLOUR = "#b0b0b0"
CATEGORY_COLOUR = "#2e8b57"


def _swarm_offsets(x: np.ndarray, rng: np.random.Generator, bins: int = 60, width: float = 0.4) -> np.ndarray:
    """Vertical jitter whose spread follows how many points share a contribution: a cheap beeswarm."""
    if len(x) == 0:
        return x
    lo, hi = float(x.min()), float(x.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins).astype(float)
    spread = width * np.sqrt(counts[which] / counts.max())
    return rng.uniform(-1, 1, len(x)) * spread


def shap_summary(
    names: list[str],
    contributions: np.ndarray,
    values: np.ndarray,
    path: Path,
    top: int = 20,
    max_rows: int = 3000,
    seed: int = 0,
    categorical: list[str] | tuple[str, ...] = (),
) -> Path:
    """SHAP-style summary without the shap package: per top feature, each row's contribution to the log-odds,
    coloured by where the row's feature value ranks (blue low, red high, grey missing).

    `contributions` is LightGBM's `predict(X, pred_contrib=True)`; its last column (the bias) is dropped
    when it has one more column than `names`. Rows beyond `max_rows` are subsampled for legibility.
    Features named in `categorical` have codes, not an order, and are drawn in one neutral colour.
    """
    contrib = np.asarray(contributions, dtype=float)
    vals = np.asarray(values, dtype=float)
    if contrib.shape[1] == len(names) + 1:
        contrib = contrib[:, :-1]
    if contrib.shape[1] != len(names) or vals.shape != contrib.shape:
        raise ValueError(
            f"shap_summary: {len(names)} names, contributions {contributions.shape}, values {vals.shape}; "
            "expected (rows, features) for both, contributions optionally with a bias column"
        )
    rng = np.random.default_rng(seed)
    if len(contrib) > max_rows:
        keep = rng.choice(len(contrib), max_rows, replace=False)
        contrib, vals = contrib[keep], vals[keep]
    order = np.argsort(-np.abs(contrib).mean(axis=0), kind="stable")[:top]
    fig, ax = _figure(figsize=(7.5, 1.4 + 0.36 * len(order)))
    cmap = SHAP_COLOURS
    for row, j in enumerate(order[::-1]):
        x, v = contrib[:, j], vals[:, j]
        known = ~np.isnan(v)
        y = row + _swarm_offsets(x, rng)
        ax.scatter(x[~known], y[~known], s=4, color=MISSING_COLOUR, alpha=0.7, linewidths=0, rasterized=True)
        if names[j] in categorical:
            ax.scatter(x[known], y[known], s=4, color=CATEGORY_COLOUR, alpha=0.7, linewidths=0, rasterized=True)
            continue
        rank = pd.Series(v[known]).rank(pct=True).to_numpy()
        ax.scatter(x[known], y[known], s=4, c=rank, cmap=cmap, vmin=0, vmax=1, alpha=0.8, linewidths=0, rasterized=True)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(np.arange(len(order)), [names[j] for j in order[::-1]], fontsize=8)
    ax.set(
        xlabel="contribution to the log-odds of closing (per row)",
        title=f"What drives the score: top {len(order)} features by mean |contribution|",
    )
    ax.title.set_fontsize(10)
    bar = fig.colorbar(
        matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, 1), cmap=cmap), ax=ax, pad=0.01, aspect=40
    )
    bar.set_ticks([0, 1], labels=["low", "high"])
    bar.set_label("feature value (rank); grey: missing, green: a category", fontsize=8)
    return _save(fig, path)
