"""From a feature frame to the float matrix LightGBM reads, with categoricals as fixed integer codes.

The codes are learned at fit time and stored in the bundle, so training, batch and online scoring
turn the same category into the same number.
"""

from __future__ import annotations

import operator
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from leadradar.errors import UserError


class FeatureValueError(UserError, ValueError):
    """A feature value that cannot be a model input; names the record and the feature."""

    def __init__(self, record: int, feature: str, reason: str):
        super().__init__(f"record {record}, feature {feature}: {reason}")
        self.record, self.feature, self.reason = record, feature, reason


class MissingFeaturesError(UserError, KeyError):
    """A record without some of the model's features; names the first such record and what it lacks."""

    def __init__(self, record: int, missing: list[str]):
        super().__init__(f"record {record} lacks features {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        self.record, self.missing = record, missing


def _plain(column: pd.Series) -> bool:
    """A column of NumPy booleans, integers or floats: its values are the model's inputs as they are."""
    return isinstance(column.dtype, np.dtype) and column.dtype.kind in "biuf"


class FeatureEncoder:
    def __init__(self, features: list[str], categorical: list[str] | None = None):
        self.features = list(features)
        self.categorical = list(categorical or [])

    def fit(self, frame: pd.DataFrame) -> FeatureEncoder:
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
            elif _plain(col):  # numbers already: `to_numeric`'s checks were most of a small batch's cost
                out[:, j] = col.to_numpy()
            else:
                out[:, j] = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    def transform_records(self, records: list[dict[str, Any]]) -> np.ndarray:
        """The same matrix from plain dicts, without building a DataFrame (the online fast path).

        Raises KeyError naming the first record and the features it lacks; a feature given as None
        is missing on purpose and becomes NaN. Values are converted column-wise in NumPy; only a
        request with a bad value takes the row-by-row path, which names the first one.
        """
        features, n = self.features, len(records)
        row = operator.itemgetter(*features) if len(features) > 1 else (lambda rec: (rec[features[0]],))
        try:
            grid = list(map(row, records))
        except KeyError:
            self._first_lacking(records)
            raise
        obj = np.empty((n, len(features)), dtype=object)
        if n:
            obj[:] = grid
        out = np.full(obj.shape, np.nan, dtype=np.float64)
        numeric = [j for j, name in enumerate(features) if name not in self.levels_]
        cells = obj[:, numeric]
        try:
            values = cells.astype(np.float64)  # None becomes NaN
        except (TypeError, ValueError, OverflowError):
            values = None
        if values is None or np.isinf(values).any():
            self._first_bad_value(records)
        nan = np.isnan(values)
        if nan.any() and any(v is not None for v in cells[nan]):  # a NaN sent as a value, not a missing one
            self._first_bad_value(records)
        out[:, numeric] = values
        for c, levels in self.levels_.items():
            j, code = features.index(c), {v: i for i, v in enumerate(levels)}
            out[:, j] = [np.nan if v is None else code.get(str(v), np.nan) for v in obj[:, j]]
        return out

    def _first_lacking(self, records: list[dict[str, Any]]) -> None:
        for i, rec in enumerate(records):
            lacking = [f for f in self.features if f not in rec]
            if lacking:
                raise MissingFeaturesError(i, lacking)

    def _first_bad_value(self, records: list[dict[str, Any]]) -> NoReturn:
        """Raise FeatureValueError for the first non-finite numeric value, in record then feature order."""
        for i, rec in enumerate(records):
            for name in self.features:
                v = rec[name]
                if v is None or name in self.levels_:
                    continue
                try:
                    x = float(v)
                except (TypeError, ValueError, OverflowError):
                    raise FeatureValueError(i, name, f"{v!r} is not a number") from None
                if not np.isfinite(x):
                    raise FeatureValueError(i, name, f"{v!r} is not a finite number (send null for a missing value)")
        raise AssertionError("a value NumPy refused passed the row-by-row check")

    def categorical_indices(self) -> list[int]:
        return [self.features.index(c) for c in self.categorical]

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features, "categorical": self.categorical, "levels": self.levels_}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureEncoder:
        enc = cls(d["features"], d["categorical"])
        enc.levels_ = {k: list(v) for k, v in d["levels"].items()}
        return enc
