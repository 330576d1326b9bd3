"""Calibrators: they fix mis-calibrated scores, survive a round trip, and are chosen honestly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import log_loss

from leadradar.config import Settings
from leadradar.models.calibration import (
    EPS,
    IsotonicCalibrator,
    SigmoidCalibrator,
    calibrator_from_dict,
    choose_calibrator,
)

CALIBRATOR_CLASSES = [IsotonicCalibrator, SigmoidCalibrator]


def _loss(y: np.ndarray, p: np.ndarray) -> float:
    return log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0, 1])


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores p_true ** 0.5 (far too high) with outcomes drawn from p_true."""
    rng = np.random.default_rng(seed)
    p_true = rng.beta(1, 8, n)
    y = (rng.random(n) < p_true).astype(int)
    return p_true**0.5, y


def _platt_distorted(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores a logistic transform of the truth's log-odds: exactly what Platt scaling undoes."""
    rng = np.random.default_rng(seed)
    p_true = rng.beta(1, 5, n)
    y = (rng.random(n) < p_true).astype(int)
    logit = np.log(p_true / (1 - p_true))
    return 1 / (1 + np.exp(-(0.5 * logit + 0.8))), y


@pytest.mark.parametrize("cls", CALIBRATOR_CLASSES, ids=lambda c: c.method)
def test_calibrator_lowers_the_log_loss_of_miscalibrated_scores(cls):
    p_fit, y_fit = _overconfident(20_000, seed=0)
    p_new, y_new = _overconfident(20_000, seed=1)
    calibrated = cls().fit(p_fit, y_fit).predict(p_new)
    assert _loss(y_new, calibrated) < _loss(y_new, p_new) - 0.05


@pytest.mark.parametrize("cls", CALIBRATOR_CLASSES, ids=lambda c: c.method)
def test_calibrated_mean_matches_the_observed_rate(cls):
    p_fit, y_fit = _overconfident(20_000, seed=0)
    p_new, y_new = _overconfident(20_000, seed=1)
    calibrated = cls().fit(p_fit, y_fit).predict(p_new)
    assert abs(calibrated.mean() - y_new.mean()) < 0.01
    assert abs(p_new.mean() - y_new.mean()) > 0.1  # the raw scores were far off


@pytest.mark.parametrize("cls", CALIBRATOR_CLASSES, ids=lambda c: c.method)
def test_to_dict_and_back_gives_identical_predictions(cls):
    p, y = _overconfident(5_000, seed=2)
    fitted = cls().fit(p, y)
    restored = calibrator_from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert type(restored) is cls
    grid = np.linspace(0, 1, 1001)
    np.testing.assert_array_equal(restored.predict(grid), fitted.predict(grid))


def test_isotonic_output_is_monotone_non_decreasing():
    p, y = _overconfident(5_000, seed=3)
    grid = np.linspace(-0.5, 1.5, 4001)  # beyond [0, 1] too: clipped, still monotone
    out = IsotonicCalibrator().fit(p, y).predict(grid)
    assert (np.diff(out) >= 0).all()
    assert out[-1] > out[0]


def test_isotonic_output_stays_a_probability():
    p, y = _overconfident(5_000, seed=3)
    out = IsotonicCalibrator().fit(p, y).predict(np.linspace(0, 1, 1001))
    assert ((out >= EPS) & (out <= 1 - EPS)).all()


def test_choose_calibrator_returns_a_fitted_calibrator_and_a_score_per_method():
    p, y = _overconfident(4_000, seed=4)
    groups = np.repeat(np.arange(1_000), 4)
    cal, scores = choose_calibrator(p, y, groups, seed=0)
    assert set(scores) == {"isotonic", "sigmoid"}
    assert all(np.isfinite(v) and v > 0 for v in scores.values())
    assert cal.method == min(scores, key=scores.get)
    assert _loss(y, cal.predict(p)) < _loss(y, p)


@pytest.mark.parametrize("seed", range(5))
def test_choose_calibrator_does_not_prefer_isotonic_on_few_platt_distorted_samples(seed):
    p, y = _platt_distorted(300, seed)
    cal, scores = choose_calibrator(p, y, np.arange(300), seed=0)
    assert scores["isotonic"] >= scores["sigmoid"] - 0.01
    assert cal.method == "sigmoid"


def test_choose_calibrator_survives_rows_of_a_single_lead():
    p = np.linspace(0.05, 0.95, 60)
    y = np.arange(60) % 2
    cal, scores = choose_calibrator(p, y, np.array(["one-lead"] * 60), seed=0)
    assert scores == {"isotonic": float("inf"), "sigmoid": float("inf")}
    assert cal.predict(np.array([0.5])).shape == (1,)


def test_isotonic_steps_stay_half_a_row_from_0_and_1():
    """A run of rows all lost says the chance is below 1 in their number, not 1 in a million (EPS)."""
    p = np.linspace(0.01, 0.99, 40)
    y = (p > 0.5).astype(int)  # perfectly separated: unbounded, the steps would be 0 and 1
    out = IsotonicCalibrator().fit(p, y).predict(np.array([0.0, 1.0]))
    assert out[0] == pytest.approx(0.5 / 40) and out[1] == pytest.approx(1 - 0.5 / 40)


def _step(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores whose truth is a step (0.5 % below 0.95, 50-60 % above): a shape isotonic fits and a sigmoid not."""
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    y = (rng.random(n) < np.where(p < 0.95, 0.005, 0.5 if n < 1000 else 0.6)).astype(int)
    return p, y


def test_isotonic_is_not_chosen_from_fewer_than_the_setting_of_either_outcome():
    """A step function on a handful of wins learns their noise; both scores are still reported."""
    least = Settings().training.isotonic_min_rarer
    p, y = _step(400, seed=0)
    cal, scores = choose_calibrator(p, y, np.arange(400), 0, least)
    assert y.sum() < least and scores["isotonic"] < scores["sigmoid"], (y.sum(), scores)
    assert cal.method == "sigmoid"
    assert choose_calibrator(p, y, np.arange(400), 0, min_rarer=0)[0].method == "isotonic"  # by its score alone
    p, y = _step(2000, seed=0)  # 72 wins: chosen by its score again
    cal, scores = choose_calibrator(p, y, np.arange(2000), 0, least)
    assert y.sum() >= least and cal.method == min(scores, key=scores.get) == "isotonic"
