"""Population stability index and the drift table on hand-made windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadradar.config import Settings
from leadradar.serving.drift import SCORE, drift_table, psi, retrain_reason


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shifted_one() -> None:
    rng = np.random.default_rng(1)
    ref = pd.Series(rng.normal(0, 1, 5000))
    assert psi(ref, pd.Series(rng.normal(0, 1, 5000)), 10) < 0.02
    assert psi(ref, pd.Series(rng.normal(1, 1, 5000)), 10) > 0.5


def test_psi_by_hand_on_two_bins() -> None:
    ref, cur = pd.Series([0.0] * 50 + [1.0] * 50), pd.Series([0.0] * 20 + [1.0] * 80)
    expected = (0.2 - 0.5) * np.log(0.2 / 0.5) + (0.8 - 0.5) * np.log(0.8 / 0.5)
    assert psi(ref, cur, 10) == pytest.approx(expected)


def test_missing_values_rising_count_as_drift_and_a_drifting_score_calls_for_a_retrain() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    reference = pd.DataFrame({"tenant_id": "t1", "dwell": rng.gamma(2, 10, n), SCORE: rng.beta(1, 9, n)})
    current = pd.DataFrame({"tenant_id": "t1", "dwell": rng.gamma(2, 10, n), SCORE: rng.beta(3, 7, n)})
    current.loc[: n // 4, "dwell"] = np.nan
    table = drift_table(reference, current, ["dwell", SCORE], Settings()).set_index("column")
    assert table.loc["dwell", "drifted"] and table.loc["dwell", "psi"] < 0.1
    assert table.loc[SCORE, "drifted"] and table.loc[SCORE, "psi"] > 0.25
    assert "score drifted" in (retrain_reason(table.reset_index(), Settings()) or "")


def test_stable_windows_call_for_no_retrain() -> None:
    rng = np.random.default_rng(3)
    frame = lambda: pd.DataFrame({"tenant_id": "t1", "a": rng.normal(size=3000), SCORE: rng.uniform(size=3000)})
    table = drift_table(frame(), frame(), ["a", SCORE], Settings())
    assert not table["drifted"].any() and retrain_reason(table, Settings()) is None
