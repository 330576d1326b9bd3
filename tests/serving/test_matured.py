"""Calibration on matured labels, computed by hand on a small example."""

from __future__ import annotations

import pandas as pd
import pytest

from leadradar.config import Settings
from leadradar.serving.matured import calibration_errors, matured_bands, wilson

AS_OF = pd.Timestamp("2026-06-01", tz="UTC")


def hand_made() -> tuple[pd.DataFrame, pd.DataFrame]:
    """t1: ten leads scored 10 %, two won within 30 days (one more too late, one before the score).
    t2: five leads scored 60 %, three won within 30 days."""
    scores = pd.DataFrame(
        {
            "tenant_id": ["t1"] * 10 + ["t2"] * 5,
            "lead_id": [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(5)],
            "as_of": AS_OF,
            "p_close": [0.1] * 10 + [0.6] * 5,
        }
    )
    day = pd.Timedelta(days=1)
    wins = pd.DataFrame(
        {
            "tenant_id": ["t1", "t1", "t1", "t1", "t2", "t2", "t2"],
            "lead_id": ["a0", "a1", "a2", "a3", "b0", "b1", "b2"],
            "ts": [
                AS_OF + 3 * day,
                AS_OF + 30 * day,
                AS_OF + 40 * day,
                AS_OF - day,
                AS_OF + day,
                AS_OF + 2 * day,
                AS_OF + 29 * day,
            ],
        }
    )
    return scores, wins


def test_matured_bands_count_only_closes_within_the_horizon_after_the_score() -> None:
    scores, wins = hand_made()
    bands = matured_bands(scores, wins, 30, Settings()).set_index("tenant_id")
    t1, t2, both = bands.loc["t1"], bands.loc["t2"], bands.loc["*"]
    assert (t1["band_from"], t1["band_to"], t1["leads"], t1["closes"]) == (0.1, 0.2, 10, 2)
    assert t1["realised"] == pytest.approx(0.2) and t1["predicted"] == pytest.approx(0.1)
    assert (t2["band_from"], t2["leads"], t2["closes"], t2["realised"]) == (0.5, 5, 3, pytest.approx(0.6))
    assert len(both) == 2 and both["leads"].sum() == 15 and both["closes"].sum() == 5


def test_wilson_interval_matches_the_textbook_value() -> None:
    low, high = wilson(2, 10, 0.95)
    assert low == pytest.approx(0.0567, abs=1e-4) and high == pytest.approx(0.5098, abs=1e-4)
    assert wilson(0, 5, 0.95)[0] == pytest.approx(0.0, abs=1e-12)


def test_a_tenant_whose_realised_closes_miss_its_scores_is_flagged_and_a_calibrated_one_is_not() -> None:
    scores, wins = hand_made()
    errors = calibration_errors(matured_bands(scores, wins, 30, Settings()), Settings()).set_index("tenant_id")
    assert errors.loc["t1", "ece"] == pytest.approx(0.1) and errors.loc["t1", "flagged"]
    assert errors.loc["t2", "ece"] == pytest.approx(0.0) and not errors.loc["t2", "flagged"]
    assert errors.loc["*", "ece"] == pytest.approx(10 / 15 * 0.1)
