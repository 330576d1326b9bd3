"""Tenant calibration over a pooled model, and the intervals served with each probability, without training."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from leadradar.config import ServingConfig
from leadradar.models.tenants import TenantCalibration
from leadradar.models.uncertainty import (
    BaggedInterval,
    BinSupportInterval,
    DispersionInterval,
    beta_quantile,
    interval_from_dict,
)
from leadradar.serving.certainty import certainty


def _world(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled probabilities that are right for tenant a and half the truth for tenant b."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.3, 6000)
    tenants = np.where(np.arange(6000) % 2 == 0, "a", "b")
    truth = np.where(tenants == "a", p, np.minimum(2 * p, 0.95))
    return p, (rng.random(6000) < truth).astype(int), tenants


def test_a_new_tenant_gets_the_pooled_probability_flagged_as_pooled() -> None:
    p, y, tenants = _world()
    cal = TenantCalibration(min_rows=1000, min_positives=40).fit(p, y, tenants)
    out, pooled = cal.predict(np.array([0.1, 0.1]), np.array(["new", "b"]))
    assert pooled.tolist() == [True, False]
    assert out[0] == pytest.approx(0.1)
    assert out[1] > 0.15  # tenant b's own calibration learned that its leads close twice as often


def test_a_tenant_below_the_minimum_rows_stays_pooled() -> None:
    p, y, tenants = _world()
    cal = TenantCalibration(min_rows=5000, min_positives=40).fit(p, y, tenants)
    assert cal.calibrators_ == {}
    assert cal.predict(p[:3], "b")[1].all()


def test_one_tenant_named_once_reads_as_that_tenant_named_on_every_row() -> None:
    """A request names its tenant once; it must read what a batch of that tenant's rows reads."""
    p, y, tenants = _world()
    cal = TenantCalibration(min_rows=1000, min_positives=40).fit(p, y, np.where(tenants == "a", "a", "b"))
    cal.calibrators_.pop("a")  # a: pooled; b: its own sigmoid
    for tenant in ("a", "b", "new"):
        one, pooled_one = cal.predict(p[:40], tenant)
        rows, pooled_rows = cal.predict(p[:40], np.full(40, tenant, dtype=object))
        np.testing.assert_array_equal(one, rows)
        np.testing.assert_array_equal(pooled_one, pooled_rows)
        assert pooled_one.all() == (tenant != "b")


def test_beta_quantile_is_scipys_beta_ppf() -> None:
    from scipy.stats import beta

    rng = np.random.default_rng(3)
    a, b = rng.uniform(0.05, 80, 5000), rng.uniform(0.05, 80, 5000)
    q = np.concatenate([[0.0, 1.0, 0.05, 0.95], rng.uniform(0, 1, 4996)])
    np.testing.assert_array_equal(beta_quantile(q, a, b), beta.ppf(q, a, b))
    grid = beta_quantile([[0.05], [0.95]], a[:7], b[:7])
    assert grid.shape == (2, 7)
    np.testing.assert_array_equal(grid, beta.ppf([[0.05], [0.95]], a[:7], b[:7]))


def test_tenant_calibration_survives_a_round_trip_through_json() -> None:
    p, y, tenants = _world()
    cal = TenantCalibration(1000, 40).fit(p, y, tenants)
    back = TenantCalibration.from_dict(cal.to_dict())
    np.testing.assert_allclose(back.predict(p[:50], tenants[:50])[0], cal.predict(p[:50], tenants[:50])[0])


def test_bin_support_intervals_hold_their_probability_and_narrow_with_more_rows() -> None:
    p, y, _ = _world()
    wide = BinSupportInterval(0.9, bins=10).fit(p[:500], y[:500])
    narrow = BinSupportInterval(0.9, bins=10).fit(p, y)
    q = np.array([0.02, 0.1, 0.25])
    lo, hi = narrow.predict(np.empty((3, 0)), q)
    assert (lo <= q).all() and (q <= hi).all()
    assert ((wide.predict(np.empty((3, 0)), q)[1] - wide.predict(np.empty((3, 0)), q)[0]) > hi - lo).all()
    back = interval_from_dict(narrow.to_dict(), [])
    np.testing.assert_allclose(back.predict(np.empty((3, 0)), q)[0], lo)


def test_bagged_intervals_are_ordered_around_the_served_probability() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 3))
    y = (rng.random(3000) < 1 / (1 + np.exp(-(X[:, 0] - 2)))).astype(int)
    params = {"objective": "binary", "verbosity": -1, "num_leaves": 7, "num_threads": 1}
    bags = []
    for seed in range(6):
        rows = np.random.default_rng(seed).integers(0, 3000, 3000)
        bags.append(lgb.train(params, lgb.Dataset(X[rows], y[rows]), num_boost_round=40))
    served = lgb.train(params, lgb.Dataset(X, y), num_boost_round=40)
    p = np.asarray(served.predict(X[:200]))
    lo, hi = BaggedInterval(0.9).fit(bags).predict(X[:200], p, lambda raw: raw)
    assert (lo <= p).all() and (p <= hi).all()
    assert (hi - lo).mean() > 0


def _dispersed(kappa: float, n: int = 20_000, seed: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calibrated estimates, truths spread around them as Beta(p·κ, (1 − p)·κ), and outcomes drawn from the truths."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.4, n)
    truth = rng.beta(p * kappa, (1 - p) * kappa)
    return p, truth, (rng.random(n) < truth).astype(int)


def test_the_dispersion_interval_holds_about_ninety_percent_of_truths_spread_as_it_assumes() -> None:
    p, truth, y = _dispersed(kappa=20)
    lo, hi = DispersionInterval(0.9, bins=10, concentration=20).fit(p, y).predict(np.empty((len(p), 0)), p)
    assert 0.88 <= np.mean((lo <= truth) & (truth <= hi)) <= 0.96
    assert (lo <= p).all() and (p <= hi).all()


def test_the_bin_support_alone_misses_most_truths_that_the_dispersion_interval_holds() -> None:
    p, truth, y = _dispersed(kappa=20)
    narrow = BinSupportInterval(0.9, bins=10).fit(p, y).predict(np.empty((len(p), 0)), p)
    assert np.mean((narrow[0] <= truth) & (truth <= narrow[1])) < 0.5


def test_a_higher_concentration_gives_a_narrower_interval_and_survives_a_round_trip_through_json() -> None:
    p, _, y = _dispersed(kappa=20, n=4000)
    q = np.array([0.02, 0.1, 0.3])
    loose = DispersionInterval(0.9, bins=10, concentration=10).fit(p, y)
    tight = DispersionInterval(0.9, bins=10, concentration=80).fit(p, y)
    lo, hi = tight.predict(np.empty((3, 0)), q)
    assert ((hi - lo) < np.subtract(*loose.predict(np.empty((3, 0)), q)[::-1])).all()
    back = interval_from_dict(tight.to_dict(), [])
    assert isinstance(back, DispersionInterval) and back.concentration == 80
    np.testing.assert_allclose(back.predict(np.empty((3, 0)), q), (lo, hi))


def test_low_confidence_reads_the_width_the_data_left_open_not_the_spread_every_lead_of_that_probability_has() -> None:
    p, _, y = _dispersed(kappa=20, n=20000)
    interval = DispersionInterval(0.9, bins=10, concentration=20).fit(p, y)
    thin = DispersionInterval(0.9, bins=10, concentration=20).fit(p[:200], y[:200])
    q, X = np.array([0.3]), np.empty((1, 0))
    lo, hi = interval.predict(X, q)
    assert hi[0] - lo[0] > 0.15  # the Beta spread alone is wide at p = 0.3
    wide = ServingConfig(low_confidence_width=0.15)
    many, few = interval.support_width(X, q), thin.support_width(X, q)
    assert many[0] < 0.15 < few[0]
    curve = {30: q}
    (sure,) = certainty(q, lo, hi, np.zeros(1, dtype=bool), curve, wide, many)
    (unsure,) = certainty(q, *thin.predict(X, q), np.zeros(1, dtype=bool), curve, wide, few)
    assert not sure["low_confidence"] and unsure["low_confidence"]
