"""Comparing feature tables from different executors of the same query."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadradar.features.registry import FeatureRegistry

KEY = ["tenant_id", "lead_id", "cutoff"]


def assert_same_features(a: pd.DataFrame, b: pd.DataFrame, registry: FeatureRegistry, rtol: float = 1e-9) -> None:
    """Same rows (by key), same metadata, numeric features equal to `rtol`, categoricals identical."""
    a = a.sort_values(KEY).reset_index(drop=True)
    b = b.sort_values(KEY).reset_index(drop=True)
    assert len(a) == len(b), f"{len(a)} rows vs {len(b)} rows"
    for col in ("tenant_id", "lead_id", "sales_id", "stage"):
        left, right = a[col].astype("string").fillna("<NA>"), b[col].astype("string").fillna("<NA>")
        bad = left != right
        assert not bad.any(), f"{col} differs for {a.loc[bad, KEY].head(3).to_dict('records')}"
    assert (a["cutoff"].astype("int64") == b["cutoff"].astype("int64")).all()
    categorical = set(registry.categorical())
    for name in registry.names:
        if name in categorical:
            left, right = a[name].astype("string").fillna("<NA>"), b[name].astype("string").fillna("<NA>")
            bad = (left != right).to_numpy()
        else:
            x, y = a[name].to_numpy(float), b[name].to_numpy(float)
            bad = ~np.isclose(x, y, rtol=rtol, atol=1e-9, equal_nan=True)
        assert not bad.any(), (
            f"feature {name} differs on {int(bad.sum())} rows, e.g. {a.loc[bad, KEY].head(2).to_dict('records')}: "
            f"{a.loc[bad, name].head(2).tolist()} vs {b.loc[bad, name].head(2).tolist()}"
        )
