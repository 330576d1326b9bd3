"""The plain baseline of the worlds benchmark reads only what happened by each cutoff, and learns something."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.plain_lightgbm import PlainLightGBM, plain_features

CUTOFF = pd.Timestamp("2026-03-01", tz="UTC")


def events(extra: list[tuple[str, str, str]] = ()) -> pd.DataFrame:
    rows = [
        ("a", "card_view", "2026-02-27"),
        ("a", "phone_call", "2026-02-10"),
        ("b", "card_view", "2025-12-01"),
        *extra,
    ]
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(len(rows))],
            "tenant_id": "t",
            "lead_id": [r[0] for r in rows],
            "event_type": [r[1] for r in rows],
            "ts": pd.to_datetime([r[2] for r in rows], utc=True),
            "dwell_s": 10.0,
        }
    )


def rows() -> pd.DataFrame:
    return pd.DataFrame({"tenant_id": "t", "lead_id": ["a", "b"], "cutoff": CUTOFF, "stage": ["new", "engaged"]})


def test_events_after_the_cutoff_never_change_the_plain_features():
    before = plain_features(events(), rows(), ["new", "engaged"])
    later = events([("a", "phone_call", "2026-03-02"), ("b", "meeting", "2026-03-05")])
    after = plain_features(later, rows(), ["new", "engaged"])
    pd.testing.assert_frame_equal(before, after[before.columns])
    assert (after.filter(like="meeting") == 0).all().all()


def test_plain_features_count_each_window_and_measure_recency():
    X = plain_features(events(), rows(), ["new", "engaged"])
    a, b = X.iloc[0], X.iloc[1]
    assert (a["n_card_view_7d"], a["n_phone_call_7d"], a["n_phone_call_30d"], a["n_phone_call_all"]) == (1, 0, 1, 1)
    assert (b["n_card_view_30d"], b["n_card_view_all"]) == (0, 1)
    assert a["hours_since_last"] == 48.0
    assert (a["stage"], b["stage"]) == (0.0, 1.0)


def test_plain_lightgbm_ranks_the_signal_it_is_given():
    rng = np.random.default_rng(0)
    n = 4000
    X = pd.DataFrame({"signal": rng.normal(size=n), "noise": rng.normal(size=n)})
    y = (rng.random(n) < 1 / (1 + np.exp(-(2 * X["signal"] - 2)))).astype(int).to_numpy()
    weeks = pd.Series(pd.date_range("2026-01-05", periods=20, freq="7D", tz="UTC"))
    cutoffs = weeks.repeat(n // 20).reset_index(drop=True)
    p = PlainLightGBM().fit(X, y, cutoffs).predict(X)
    assert np.corrcoef(p, X["signal"])[0, 1] > 0.8
