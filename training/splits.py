"""Time-based splits with a gap of one horizon, so no label window crosses from train into evaluation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from leadradar.errors import TooLittleDataError


@dataclass(frozen=True)
class TimeSplit:
    train: list[pd.Timestamp]
    validation: list[pd.Timestamp]
    test: list[pd.Timestamp]

    def masks(self, cutoff: pd.Series) -> dict[str, np.ndarray]:
        return {name: cutoff.isin(getattr(self, name)).to_numpy() for name in ("train", "validation", "test")}

    def describe(self) -> dict[str, str]:
        return {
            f"{name}_{end}": getattr(self, name)[i].isoformat()
            for name in ("train", "validation", "test")
            for end, i in (("from", 0), ("to", -1))
        }


def time_split(
    cutoffs: list[pd.Timestamp], horizon_days: int, validation_fraction: float, test_fraction: float
) -> TimeSplit:
    """Latest cutoffs test, the ones before validate, the earliest train; gaps of one horizon between."""
    cuts = sorted(set(cutoffs))
    if not cuts:
        raise TooLittleDataError("too few cutoffs to split: none at all (the training set is empty)")
    gap = timedelta(days=horizon_days)
    n_test = max(1, math.ceil(len(cuts) * test_fraction))
    test = cuts[-n_test:]
    before_test = [c for c in cuts if c + gap <= test[0]]
    n_val = max(1, math.ceil(len(cuts) * validation_fraction))
    validation = before_test[-n_val:]
    train = [c for c in before_test if c + gap <= validation[0]] if validation else []
    if not train or not validation:
        raise TooLittleDataError(
            f"{len(cuts)} cutoffs from {cuts[0]:%Y-%m-%d} to {cuts[-1]:%Y-%m-%d} are too few for train, "
            f"validation and test with {horizon_days}-day gaps; supply a longer history"
        )
    return TimeSplit(train=train, validation=validation, test=test)


@dataclass(frozen=True)
class Fold:
    """One rolling-origin step: fit on `fit` (every label window ends by `predict[0]`), predict `predict`."""

    fit: list[pd.Timestamp]
    predict: list[pd.Timestamp]


def rolling_origin(cutoffs: list[pd.Timestamp], horizon_days: int, folds: int, min_fit_cutoffs: int = 1) -> list[Fold]:
    """The latest cutoffs cut into up to `folds` blocks in time order, each predicted by what precedes it by a gap.

    A cutoff can be predicted once at least `min_fit_cutoffs` cutoffs lie a horizon before it; those
    cutoffs are shared out into contiguous blocks (earliest first). Empty when none can be predicted.
    """
    cuts = sorted(set(cutoffs))
    gap = timedelta(days=horizon_days)
    eligible = [c for c in cuts if sum(f + gap <= c for f in cuts) >= min_fit_cutoffs]
    if not eligible or folds < 1:
        return []
    blocks = [list(b) for b in np.array_split(np.array(eligible, dtype=object), min(folds, len(eligible)))]
    return [Fold(fit=[c for c in cuts if c + gap <= block[0]], predict=block) for block in blocks]
