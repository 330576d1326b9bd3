"""From a feature frame to the float matrix LightGBM reads, with categoricals as fixed integer codes.

The codes are learned at fit time and stored in the bundle, so training, batch and online scoring
turn the same category into the same number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


class FeatureValueError(ValueError):
    """A feature value that cannot be a model input; names the record and the feature."""

    def __init__(self, record: int, feature: str, reason: str):
        super().__init__(f"record {record}, feature {feature}: {reason}")
        self.record, self.feature, self.reason = record, feature, reason


class FeatureEncoder:
    def __init__(self, features: list[str], categorical: list[str] | None = None):
        self.features = list(features)
        self.categorical = list(categorical or [])

    def fit(self, frame: pd.DataFrame) -> "FeatureEncoder":
        self._check(frame)
        self.levels_: dict[str, list[str]] = {
            c: sorted(str(v) for v in frame[c].dropna().unique()) for c in self.categorical
        }
        return self

    def _check(self, frame: pd.DataFrame) -> None:
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise KeyError(f"feature columns missing: {missing[:10]}{' ...' if len(missing) > 10 else ''}")

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """A float64 matrix in feature order; unseen categories and missing values become NaN."""
        self._check(frame)
        out = np.empty((len(frame), len(self.features)), dtype=np.float64)
        for j, name in enumerate(self.features):
            col = frame[name]
            if name in self.levels_:
                codes = pd.Categorical(col.astype("string"), categories=self.levels_[name]).codes
                out[:, j] = np.where(codes < 0, np.nan, codes)
            else:
                out[:, j] = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    def transform_records(self, records: list[dict[str, Any]]) -> np.ndarray:
        """The same matrix from plain dicts, without building a DataFrame (the online fast path).

        Raises KeyError naming the first record and the features it lacks; a feature given as None
        is missing on purpose and becomes NaN.
        """
        out = np.full((len(records), len(self.features)), np.nan, dtype=np.float64)
        codes = {c: {v: i for i, v in enumerate(levels)} for c, levels in self.levels_.items()}
        for i, rec in enumerate(records):
            lacking = [f for f in self.features if f not in rec]
            if lacking:
                raise KeyError(f"record {i} lacks features {lacking[:5]}{' ...' if len(lacking) > 5 else ''}")
            for j, name in enumerate(self.features):
                v = rec[name]
                if v is None:
                    continue
                if name in codes:
                    out[i, j] = codes[name].get(str(v), np.nan)
                    continue
                try:
                    x = float(v)
                except (TypeError, ValueError, OverflowError):
                    raise FeatureValueError(i, name, f"{v!r} is not a number") from None
                if not np.isfinite(x):
                    raise FeatureValueError(i, name, f"{v!r} is not a finite number (send null for a missing value)")
                out[i, j] = x
        return out

    def categorical_indices(self) -> list[int]:
        return [self.features.index(c) for c in self.categorical]

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features, "categorical": self.categorical, "levels": self.levels_}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeatureEncoder":
        enc = cls(d["features"], d["categorical"])
        enc.levels_ = {k: list(v) for k, v in d["levels"].items()}
        return enc
