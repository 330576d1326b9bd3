"""Bootstrap intervals over leads: ordered around the figure, and resampling whole leads, never single rows."""

from __future__ import annotations

import numpy as np

from leadradar.training.intervals import INTERVAL_METRICS, bootstrap_intervals, figures, lead_resamples


def scored(leads: int, rows_per_lead: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lead = np.repeat(np.arange(leads), rows_per_lead).astype(str)
    truth = np.repeat(rng.beta(1, 12, leads), rows_per_lead)
    y = (rng.random(len(lead)) < truth).astype(int)
    p = np.clip(truth + rng.normal(0, 0.02, len(lead)), 0.001, 0.999)
    return y, p, lead, truth


def test_every_figure_has_an_interval_that_holds_it():
    y, p, lead, truth = scored(400, 3)
    ci = bootstrap_intervals(y, p, lead, truth, resamples=60)
    point = figures(y, p, truth, 15)
    assert set(point) == set(INTERVAL_METRICS)
    for name, value in point.items():
        assert ci[f"{name}_lo"] <= value <= ci[f"{name}_hi"], name
    assert ci["auc_lo"] < ci["auc_hi"]


def test_a_resample_brings_each_drawn_lead_with_all_its_rows():
    lead = np.array(["a", "b", "a", "c", "b", "a", "d"])
    size = {"a": 3, "b": 2, "c": 1, "d": 1}
    for rows in lead_resamples(lead, resamples=20, seed=3):
        drawn, counts = np.unique(lead[rows], return_counts=True)
        assert all(n % size[g] == 0 for g, n in zip(drawn, counts, strict=True))
        assert sum(n // size[g] for g, n in zip(drawn, counts, strict=True)) == len(size)  # as many leads as there are


def test_correlated_rows_of_one_lead_widen_the_interval_as_resampling_rows_would_not():
    y, p, lead, _ = scored(150, 8, seed=1)
    by_lead = bootstrap_intervals(y, p, lead, resamples=80)
    by_row = bootstrap_intervals(y, p, np.arange(len(y)).astype(str), resamples=80)
    assert by_lead["logloss_hi"] - by_lead["logloss_lo"] > by_row["logloss_hi"] - by_row["logloss_lo"]
