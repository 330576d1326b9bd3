"""The baselines the funnel model is measured against, on small lead frames made here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import log_loss

from leadradar.training.baselines import (
    BASELINES,
    BaseRate,
    LogisticBaseline,
    PointsScore,
    RecencyFrequency,
    baseline_predictions,
    fit_baselines,
)

STAGES = ["new", "engaged", "contacted", "qualified", "proposal"]


def lead_frame(n: int, seed: int) -> pd.DataFrame:
    """Leads whose chance of closing rises with engagement and stage, shaped like the training set."""
    rng = np.random.default_rng(seed)
    intent = rng.normal(size=n)
    rank = np.clip(np.round(intent + rng.normal(scale=0.8, size=n) + 1), 0, 4).astype(int)
    hours = rng.exponential(200 * np.exp(-intent), size=n)
    hours[rng.random(n) < 0.1] = np.nan  # never touched the card
    frame = pd.DataFrame(
        {
            "tenant_id": rng.choice(["t1", "t2"], n),
            "lead_id": [f"L{i}" for i in range(n)],
            "cutoff": pd.Timestamp("2026-01-05", tz="UTC"),
            "stage": np.array(STAGES)[rank],
            "stage_rank": rank.astype(float),
            "hours_since_last_any": hours,
            "sessions_30d": rng.poisson(2 * np.exp(0.6 * intent)).astype(float),
            "n_card_view_30d": rng.poisson(3 * np.exp(0.5 * intent)).astype(float),
            "n_product_view_30d": rng.poisson(np.exp(0.6 * intent)).astype(float),
            "pricing_views_30d": rng.poisson(0.5 * np.exp(intent)).astype(float),
            "n_meeting_30d": rng.poisson(0.1 * np.exp(intent)).astype(float),
            "n_card_save_all": rng.poisson(0.3 * np.exp(0.5 * intent)).astype(float),
            "attr_industry": rng.choice(["retail", "finance"], n),
        }
    )
    frame.loc[rng.random(n) < 0.05, "n_product_view_30d"] = np.nan
    p = 1 / (1 + np.exp(-(-3.0 + 1.5 * intent)))
    frame["y_close_30d"] = (rng.random(n) < p).astype(float)
    return frame


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return lead_frame(4000, seed=1)


@pytest.fixture(scope="module")
def test() -> pd.DataFrame:
    return lead_frame(2000, seed=2)


def test_every_baseline_gives_one_probability_pair_per_row(train: pd.DataFrame, test: pd.DataFrame) -> None:
    fitted = fit_baselines(train, train["y_close_30d"].to_numpy())
    assert set(fitted) == set(BASELINES)
    for name, est in fitted.items():
        proba = est.predict_proba(test)
        assert proba.shape == (len(test), 2), name
        assert np.isfinite(proba).all() and (proba >= 0).all() and (proba <= 1).all(), name
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    predictions = baseline_predictions(fitted, test)
    np.testing.assert_allclose(predictions["points"], fitted["points"].predict_proba(test)[:, 1])


def test_base_rate_predicts_the_training_rate_everywhere(train: pd.DataFrame, test: pd.DataFrame) -> None:
    p = BaseRate().fit(train, train["y_close_30d"]).predict_proba(test)[:, 1]
    assert np.allclose(p, train["y_close_30d"].mean())


def test_logistic_beats_base_rate_when_one_feature_drives_the_label(train: pd.DataFrame) -> None:
    rng = np.random.default_rng(5)
    frame = train.copy()
    frame["pricing_views_30d"] = rng.poisson(2.0, len(frame)).astype(float)
    y = (rng.random(len(frame)) < 1 / (1 + np.exp(-(frame["pricing_views_30d"] - 3)))).astype(int)
    fit, held = frame.iloc[:3000], frame.iloc[3000:]
    p_logistic = LogisticBaseline().fit(fit, y[:3000]).predict_proba(held)[:, 1]
    p_base = BaseRate().fit(fit, y[:3000]).predict_proba(held)[:, 1]
    assert log_loss(y[3000:], p_logistic) < log_loss(y[3000:], p_base) - 0.05


def test_logistic_reads_only_numeric_features_never_labels_or_keys(train: pd.DataFrame) -> None:
    est = LogisticBaseline().fit(train, train["y_close_30d"])
    assert "y_close_30d" not in est.columns_
    assert not {"tenant_id", "lead_id", "cutoff", "stage", "attr_industry"} & set(est.columns_)
    assert "pricing_views_30d" in est.columns_ and "stage_rank" in est.columns_
    named = LogisticBaseline(features=["pricing_views_30d", "attr_industry"]).fit(train, train["y_close_30d"])
    assert named.columns_ == ["pricing_views_30d"]


def test_points_score_puts_pricing_views_and_a_meeting_above_a_single_card_open(train: pd.DataFrame) -> None:
    two = pd.DataFrame(
        {
            "stage_rank": [1.0, 1.0],
            "hours_since_last_any": [30.0, 30.0],
            "n_card_view_30d": [1.0, 1.0],
            "pricing_views_30d": [2.0, 0.0],
            "n_meeting_30d": [1.0, 0.0],
        }
    )
    est = PointsScore().fit(train, train["y_close_30d"])
    score = est.score_rows(two)
    assert score[0] - score[1] == pytest.approx(2 * 10 + 25)
    p = est.predict_proba(two)[:, 1]
    assert p[0] > p[1]


def test_points_decay_with_every_idle_week_up_to_the_cap() -> None:
    est = PointsScore()
    idle = pd.DataFrame({"stage_rank": [0.0] * 4, "hours_since_last_any": [10.0, 200.0, 400.0, np.nan]})
    score = est.score_rows(idle)
    assert list(score) == [10.0, -5.0, -10.0, -30.0]


def test_point_table_is_a_parameter_and_clones_with_the_estimator(train: pd.DataFrame) -> None:
    est = PointsScore(
        points={"n_card_view_30d": (100.0, 100.0)}, stage_points=0, recent_points=0, decay_per_idle_week=0
    )
    one_open = pd.DataFrame({"n_card_view_30d": [1.0], "hours_since_last_any": [1.0]})
    assert est.score_rows(one_open)[0] == 100.0
    assert clone(est).get_params()["points"] == {"n_card_view_30d": (100.0, 100.0)}


def test_recency_frequency_gives_recent_frequent_leads_the_top_bucket() -> None:
    leads = pd.DataFrame(
        {"hours_since_last_any": [1.0, 24.0, 25.0, 5000.0, np.nan], "sessions_30d": [20.0, 3.0, 1.0, 0.0, np.nan]}
    )
    r, f = RecencyFrequency().buckets(leads)
    assert list(r) == [5, 5, 4, 0, 0]
    assert list(f) == [5, 2, 1, 0, 0]
    score = RecencyFrequency().score_rows(leads)
    assert score[0] > score[1] > score[2] > score[3] == score[4]


def test_rule_scores_name_the_columns_they_lack(train: pd.DataFrame) -> None:
    with pytest.raises(KeyError, match="hours_since_last_any"):
        RecencyFrequency().fit(train[["tenant_id"]], train["y_close_30d"])


def test_fit_refuses_missing_labels(train: pd.DataFrame) -> None:
    y = train["y_close_30d"].to_numpy().copy()
    y[0] = np.nan
    with pytest.raises(ValueError, match="0/1"):
        LogisticBaseline().fit(train, y)
    with pytest.raises(KeyError, match="unknown baselines"):
        fit_baselines(train, train["y_close_30d"], names=["oracle"])
