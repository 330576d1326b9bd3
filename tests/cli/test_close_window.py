"""The expected close window read off the 7/30/90-day close curve."""

from __future__ import annotations

import numpy as np

from leadradar.targets import close_window


def test_the_close_window_never_moves_later_as_the_short_horizons_probability_rises() -> None:
    p7 = np.linspace(0.0, 0.2, 41)
    curve = {7: p7, 30: np.maximum(p7, 0.12), 90: np.full(41, 0.2)}
    _, end = close_window(curve)
    assert (np.diff(end) <= 0).all()
    assert end[0] == 30 and end[-1] == 7


def test_the_close_window_is_the_horizon_by_which_half_the_chance_to_close_is_reached() -> None:
    curve = {
        7: np.array([0.01, 0.2, 0.0, 0.01]),
        30: np.array([0.05, 0.3, 0.0, 0.02]),
        90: np.array([0.1, 0.35, 0.01, 0.1]),
    }
    start, end = close_window(curve, min_p=0.05)
    assert list(zip(start, end)) == [(8, 30), (0, 7), (0, 0), (31, 90)]


def test_scaling_every_horizon_together_keeps_the_window() -> None:
    rng = np.random.default_rng(0)
    p7 = rng.uniform(0, 0.1, 200)
    p30 = p7 + rng.uniform(0, 0.1, 200)
    p90 = p30 + rng.uniform(0, 0.1, 200)
    base = close_window({7: p7, 30: p30, 90: p90})
    scaled = close_window({7: 2 * p7, 30: 2 * p30, 90: 2 * p90})
    np.testing.assert_array_equal(base[1], scaled[1])
