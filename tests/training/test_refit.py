"""Evaluate, then refit: the backtest stays the honest evaluation, the model served has seen the latest weeks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from leadradar.config import Settings
from leadradar.features.radar_log import RadarLog
from leadradar.features.simulator import SimulationConfig, simulate
from leadradar.features.trainset import build_training_set
from leadradar.registry import ModelRef, configure_mlflow, load_version
from leadradar.training import pipeline

# Each test trains a model (tens of seconds): left out of `make test-fast`.
pytestmark = pytest.mark.slow


def quick(home, name: str, **training) -> Settings:
    """Quick models: one horizon, no transition models, few resamples."""
    return Settings(
        home=home,
        mlflow={"model_name": name},
        training={"horizons_days": (30,), "transition_models": False, "bootstrap_resamples": 30, **training},
    )


@pytest.fixture(scope="module")
def log(tmp_path_factory) -> RadarLog:
    out = tmp_path_factory.mktemp("refit")
    simulate(SimulationConfig(tenants=2, leads=3000, days=240, seed=11), Settings()).write(out)
    return RadarLog.from_dir(out)


def test_the_served_model_has_seen_the_last_labelled_cutoff_and_the_backtest_model_has_not(log, tmp_path):
    settings = quick(tmp_path, "refit-on")
    result = pipeline.train_from_logs(log, settings, use_tuned=False)
    served = load_version(settings, ModelRef(result.model_name, result.model_version, result.run_id))
    backtest = served.companion("backtest")
    assert result.extra["served_model"] == "refit" and backtest is not None

    last = result.window["last_cutoff"]
    assert served.meta_["refit"]["close_30d"]["cutoff_to"] == last
    configure_mlflow(settings)
    run = MlflowClient().get_run(result.run_id)
    assert run.data.tags["served_model"] == "refit" and run.data.tags["refit.cutoff_to"] == last
    assert pd.Timestamp(run.data.tags["split.train_to"]) < pd.Timestamp(last)  # the backtest trained on less
    assert int(run.data.params["refit_rows_close_30d"]) > int(run.data.params["rows_train"])
    assert run.data.params["consent_required"] == str(
        settings.privacy.consent_required
    )  # what the rows were built under
    leaf = int(run.data.params["min_data_in_leaf_close_30d"])  # the backtest's, kept by the refit (20 to 100 rows)
    assert 20 <= leaf <= 100 and served.targets_["close_30d"].min_data_in_leaf == leaf
    assert served.targets_["close_30d"].booster.params["min_data_in_leaf"] == leaf
    assert served.isotonic_min_rarer == backtest.isotonic_min_rarer == settings.training.isotonic_min_rarer

    latest = build_training_set(log, settings, cutoff_range=(pd.Timestamp(last), pd.Timestamp(last))).frame
    p_served = served.predict_proba(latest)[:, 1]
    p_backtest = backtest.predict_proba(latest)[:, 1]
    assert np.abs(p_served - p_backtest).max() > 1e-3
    assert ((p_served >= 0) & (p_served <= 1)).all()


def test_with_refit_switched_off_the_backtest_model_is_served(log, tmp_path):
    settings = quick(tmp_path, "refit-off", refit_on_all=False)
    result = pipeline.train_from_logs(log, settings, use_tuned=False)
    served = load_version(settings, ModelRef(result.model_name, result.model_version, result.run_id))
    assert result.extra["served_model"] == "backtest" and served.companion("backtest") is None
    configure_mlflow(settings)
    assert MlflowClient().get_run(result.run_id).data.tags["served_model"] == "backtest"
