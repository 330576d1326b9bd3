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
