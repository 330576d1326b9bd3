"""The closed leads' profile: quartiles of behaviour features over the training rows that closed, kept with the
model, and the comparison a reason carries ("... — closed leads: 1.5 on median")."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadradar.features.registry import build_registry
from leadradar.models.profile import MIN_CLOSED_ROWS, closed_median, closed_profile, compared


def test_the_profile_reads_only_rows_that_closed_and_skips_categories(settings):
    n = 4 * MIN_CLOSED_ROWS
    frame = pd.DataFrame(
        {
            "views": np.r_[np.full(n // 2, 100.0), np.arange(n // 2, dtype=float)],
            "city": ["a"] * n,
            "y": np.r_[np.zeros(n // 2), np.ones(n // 2)],
        }
    )
    profile = closed_profile(frame, ["views", "city"], ["city"], "y")
    assert profile["rows"] == n // 2
    assert profile["features"] == {"views": {"q25": 9.75, "q50": 19.5, "q75": 29.25}}
    few = closed_profile(frame.tail(MIN_CLOSED_ROWS - 1), ["views"], [], "y")
    assert few == {"rows": MIN_CLOSED_ROWS - 1, "features": {}}


def test_only_behaviour_is_compared_and_counts_keep_their_decimals(settings):
    registry = build_registry(settings)
    behaviour = next(f for f in registry if f.source == "activity" and f.kind == "count")
    stage = next(f for f in registry if f.family == "funnel")
    profile = {"rows": 50, "features": {f.name: {"q25": 1.0, "q50": 1.5, "q75": 3.0} for f in (behaviour, stage)}}
    assert closed_median(profile, behaviour) == 1.5
    assert closed_median(profile, stage) is None
    assert compared(behaviour, 1.5, "en") == " — closed leads: 1.5 on median"
    assert compared(behaviour, 1.5, "zh-CN") == "（已成交线索中位数：1.5）"
    assert compared(behaviour, None, "en") == ""
