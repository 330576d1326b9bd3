"""Calibrators that turn a raw score into a probability people can read literally.

Both store plain arrays (no pickles) so a bundle stays readable across library versions, and both
predict with numpy only, which keeps the serving path fast.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.special import xlogy
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

# Probabilities are kept in [EPS, 1 - EPS] wherever a log is taken: calibration, metrics, baselines.
EPS = 1e-6


def clipped(p: np.ndarray | pd.Series, who: str = "probabilities") -> np.ndarray:
    """Probabilities as floats in [EPS, 1 - EPS]; a NaN is refused, naming how many (a score of NaN rows would
    otherwise come out as a number or as NaN, depending on the function)."""
    p = np.asarray(p, dtype=float)
    if np.isnan(p).any():
        raise ValueError(f"{who}: {int(np.isnan(p).sum())} of {len(p)} probabilities are NaN")
    return np.clip(p, EPS, 1 - EPS)


def log_loss(y: np.ndarray | pd.Series, p: np.ndarray | pd.Series) -> float:
    """Mean negative log-likelihood of the 0/1 outcomes `y` under `p` (clipped): scikit-learn's `log_loss` with
    labels [0, 1], without its input checks (a bootstrap computes it hundreds of times)."""
    y, q = np.asarray(y, dtype=float), clipped(p, "log_loss")
    return float(np.mean(-(xlogy(y, q) + xlogy(1 - y, 1 - q))))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


class IsotonicCalibrator:
    """Monotone step function from raw probability to observed frequency."""

    method = "isotonic"

    def fit(self, p: np.ndarray, y: np.ndarray) -> IsotonicCalibrator:
        """No step goes nearer 0 or 1 than half a row of the rows fitted: a run of 20 rows all lost says the chance is
        below 1 in 20, not 1 in a million, and one such lead won cost 14 nats at EPS."""
        edge = max(EPS, 0.5 / max(len(y), 1))
        iso = IsotonicRegression(out_of_bounds="clip", y_min=edge, y_max=1 - edge).fit(p, y)
        self.x_ = np.asarray(iso.X_thresholds_, dtype=float)
        self.y_ = np.asarray(iso.y_thresholds_, dtype=float)
        return self

    def predict(self, p: np.ndarray) -> np.ndarray:
        return np.interp(p, self.x_, self.y_)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "x": self.x_.tolist(), "y": self.y_.tolist()}


class SigmoidCalibrator:
    """Platt scaling on the log-odds: smooth, two parameters, robust on few positives."""

    method = "sigmoid"

    def fit(self, p: np.ndarray, y: np.ndarray) -> SigmoidCalibrator:
        lr = LogisticRegression(C=1e6).fit(_logit(p)[:, None], y)
        self.a_ = float(lr.coef_[0, 0])
        self.b_ = float(lr.intercept_[0])
        return self

    def predict(self, p: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.a_ * _logit(p) + self.b_)))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "a": self.a_, "b": self.b_}


Calibrator = IsotonicCalibrator | SigmoidCalibrator
CALIBRATORS: dict[str, type[Calibrator]] = {"isotonic": IsotonicCalibrator, "sigmoid": SigmoidCalibrator}


def calibrator_from_dict(d: dict[str, Any]) -> Calibrator:
    if d["method"] == "isotonic":
        iso = IsotonicCalibrator()
        iso.x_, iso.y_ = np.asarray(d["x"], dtype=float), np.asarray(d["y"], dtype=float)
        return iso
    sig = SigmoidCalibrator()
    sig.a_, sig.b_ = float(d["a"]), float(d["b"])
    return sig


def choose_calibrator(
    p: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int = 0, min_rarer: int = 0
) -> tuple[IsotonicCalibrator | SigmoidCalibrator, dict[str, float]]:
    """Pick isotonic or sigmoid by cross-validated log loss on the validation rows, then refit on all; the sigmoid
    alone when either outcome has fewer than `min_rarer` rows (`training.isotonic_min_rarer`; both scores are still
    given).

    Folds split by `groups` (the lead) so one lead's rows never sit on both sides; judging on the
    rows a calibrator was fitted on would always favour isotonic.
    """
    codes, uniq = pd.factorize(groups)
    fold = np.random.default_rng(seed).integers(0, 2, len(uniq))[codes]
    scores: dict[str, float] = {}
    for name, cls in CALIBRATORS.items():
        losses = []
        for k in (0, 1):
            fit, held = fold != k, fold == k
            if fit.sum() == 0 or held.sum() == 0 or y[fit].min() == y[fit].max():
                continue
            pred = cls().fit(p[fit], y[fit]).predict(p[held])
            losses.append(log_loss(y[held], pred))
        scores[name] = float(np.mean(losses)) if losses else float("inf")
    rarer = min(int(y.sum()), len(y) - int(y.sum()))
    best = "sigmoid" if rarer < min_rarer else min(scores, key=lambda name: scores[name])
    return CALIBRATORS[best]().fit(p, y), scores
