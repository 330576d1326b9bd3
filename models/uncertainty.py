"""How sure one close probability is: an interval per lead, from boosters refit on resampled leads or from
the support of the calibration bin the probability falls in.

Both are kept because which one is honest is measured, not assumed (benchmarks/quality_tenants.py: how
often the nominal interval holds the simulator's true probability); the settings choose the one served.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightgbm as lgb
import numpy as np
from scipy.special import betaincinv

Calibrate = Callable[[np.ndarray], np.ndarray]


def beta_quantile(q: Any, a: Any, b: Any) -> np.ndarray:
    """The `q` quantile of Beta(a, b): the function `scipy.stats.beta.ppf` computes (equal to it), without that
    method's argument handling, about 70 µs a call and five calls a scored lead."""
    return np.asarray(betaincinv(a, b, q))


def contain(lo: np.ndarray, p: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Widen an interval to hold the point estimate, so lo <= p <= hi always reads right."""
    return np.minimum(lo, p), np.maximum(hi, p)


class BaggedInterval:
    """The spread of the calibrated probability over boosters fitted on bootstrap samples of the leads."""

    method = "bagged"

    def __init__(self, level: float = 0.9):
        self.level = level

    def fit(self, boosters: list[lgb.Booster]) -> BaggedInterval:
        self.boosters_ = boosters
        return self

    def predict(self, X: np.ndarray, p: np.ndarray, calibrate: Calibrate) -> tuple[np.ndarray, np.ndarray]:
        threads = 1 if len(X) < 64 else 0
        draws = np.vstack([calibrate(np.asarray(b.predict(X, num_threads=threads))) for b in self.boosters_])
        tail = (1 - self.level) / 2
        lo, hi = np.quantile(draws, [tail, 1 - tail], axis=0)
        return contain(lo, p, hi)

    def support_width(self, X: np.ndarray, p: np.ndarray, calibrate: Calibrate) -> np.ndarray:
        """How much of the width comes from what the data could not pin down: all of it for bootstrap boosters."""
        lo, hi = self.predict(X, p, calibrate)
        return hi - lo

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "level": self.level, "bags": len(self.boosters_)}


class BinSupportInterval:
    """A Jeffreys interval for the observed rate of the calibration bin a probability falls in."""

    method = "bin_support"

    def __init__(self, level: float = 0.9, bins: int = 15):
        self.level, self.bins = level, bins

    def fit(self, p: np.ndarray, y: np.ndarray) -> BinSupportInterval:
        """Equal-count bins of the calibrated probabilities of out-of-sample rows, with their rows and wins."""
        order = np.argsort(p, kind="stable")
        chunks = [c for c in np.array_split(order, self.bins) if len(c)]
        self.upper_ = np.array([p[c].max() for c in chunks[:-1]], dtype=float)
        self.rows_ = np.array([len(c) for c in chunks], dtype=float)
        self.wins_ = np.array([y[c].sum() for c in chunks], dtype=float)
        return self

    def predict(
        self, X: np.ndarray, p: np.ndarray, calibrate: Calibrate | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        k = np.searchsorted(self.upper_, p, side="left")
        n, wins = self.rows_[k], self.wins_[k]
        tail = (1 - self.level) / 2
        rate = wins / n
        lo = beta_quantile(tail, wins + 0.5, n - wins + 0.5)
        hi = beta_quantile(1 - tail, wins + 0.5, n - wins + 0.5)
        # the interval is for the bin's rate; centred on the lead's own probability, it keeps the bin's width
        return contain(np.clip(p - (rate - lo), 0, 1), p, np.clip(p + (hi - rate), 0, 1))

    def support_width(self, X: np.ndarray, p: np.ndarray, calibrate: Calibrate | None = None) -> np.ndarray:
        """The width the calibration bin's few rows leave: what low confidence means (little data like this lead),
        without the spread every lead of the same probability has (DispersionInterval's Beta part)."""
        lo, hi = BinSupportInterval.predict(self, X, p, calibrate)
        return hi - lo

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "level": self.level,
            "bins": self.bins,
            "upper": self.upper_.tolist(),
            "rows": self.rows_.tolist(),
            "wins": self.wins_.tolist(),
        }


class DispersionInterval(BinSupportInterval):
    """Where the true probability lies around the estimate: Beta(p·κ, (1 − p)·κ), widened by the bin's support.

    The calibration bin's interval alone says how well the bin's rate is known, not how far one lead's truth
    lies from it (what the log does not show: the hidden mode). That spread cannot be read from 0/1 outcomes
    (for a calibrated p every spread gives the same Brier score), so κ is chosen on simulated worlds with a
    known truth, left out one at a time (benchmarks/quality_worlds.py), and is a setting.
    """

    method = "dispersion"

    def __init__(self, level: float = 0.9, bins: int = 15, concentration: float = 30.0):
        super().__init__(level, bins)
        self.concentration = concentration

    def predict(
        self, X: np.ndarray, p: np.ndarray, calibrate: Calibrate | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        lo_bin, hi_bin = super().predict(X, p, calibrate)
        q = np.clip(p, 1e-6, 1 - 1e-6)
        tail = (1 - self.level) / 2
        lo, hi = beta_quantile([[tail], [1 - tail]], q * self.concentration, (1 - q) * self.concentration)
        return contain(np.clip(lo - (p - lo_bin), 0, 1), p, np.clip(hi + (hi_bin - p), 0, 1))

    def to_dict(self) -> dict[str, Any]:
        return super().to_dict() | {"concentration": self.concentration}


Interval = BaggedInterval | BinSupportInterval | DispersionInterval


def interval_from_dict(d: dict[str, Any], boosters: list[lgb.Booster]) -> Interval:
    if d["method"] == BaggedInterval.method:
        return BaggedInterval(d["level"]).fit(boosters)
    if d["method"] == DispersionInterval.method:
        out: BinSupportInterval = DispersionInterval(d["level"], d["bins"], d["concentration"])
    else:
        out = BinSupportInterval(d["level"], d["bins"])
    out.upper_, out.rows_, out.wins_ = (np.asarray(d[k], dtype=float) for k in ("upper", "rows", "wins"))
    return out
