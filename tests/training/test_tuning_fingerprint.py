"""Tuning belongs to its data: a study tuned on one log never sets the parameters of a model trained on another."""

from __future__ import annotations

import optuna
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from leadradar.cli import app
from leadradar.config import Settings
from leadradar.demo import train_demo_model
from leadradar.features.radar_log import RadarLog
from leadradar.features.simulator import SimulationConfig, simulate
from leadradar.training.pipeline import train_from_logs, tune_from_logs
from leadradar.training.tuning import DEFAULTS

# Tunes once and trains three small models (about a minute): left out of `make test-fast`.
pytestmark = pytest.mark.slow


def log_of(tmp_path_factory, seed: int) -> RadarLog:
    out = tmp_path_factory.mktemp(f"log{seed}")
    paths = simulate(SimulationConfig(tenants=1, leads=2500, days=240, seed=seed), Settings()).write(out)
    return RadarLog(paths["events"], paths["stages"], items=paths["items"], leads=paths["leads"])


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> tuple[RadarLog, RadarLog]:
    return log_of(tmp_path_factory, 31), log_of(tmp_path_factory, 32)


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return Settings(
        home=tmp_path_factory.mktemp("tune-home"),
        mlflow={"model_name": "tune-test"},
        training={"horizons_days": (30,), "transition_models": False, "num_boost_round": 40},
    )


@pytest.fixture(scope="module")
def tuned(logs, settings):
    """Two trials on the first log."""
    return tune_from_logs(logs[0], settings, n_trials=2, progress=False)


def test_a_study_tuned_on_one_log_is_not_used_to_train_on_another(logs, settings, tuned):
    other = train_from_logs(logs[1], settings)
    assert other.extra["params_source"] == DEFAULTS
    same = train_from_logs(logs[0], settings)
    assert same.extra["params_source"] == f"study {tuned.study}"
    tags = {r.extra["params_source"]: MlflowClient().get_run(r.run_id).data.tags for r in (other, same)}
    assert tags[DEFAULTS]["params_source"] == DEFAULTS
    assert tags[f"study {tuned.study}"]["params_source"] == f"study {tuned.study}"


def test_a_study_is_named_by_model_target_and_fingerprint_and_remembers_its_window(tuned, settings):
    assert tuned.study == f"tune-test-close_30d-{tuned.fingerprint[:12]}"
    study = optuna.load_study(study_name=tuned.study, storage=tuned.storage)
    assert study.user_attrs == {"fingerprint": tuned.fingerprint, "window": tuned.window}
    assert "first_cutoff" in tuned.window and "data_until" in tuned.window


def test_the_demo_ignores_a_study_of_its_own_data(logs, settings, tuned):
    assert train_demo_model(logs[0], settings).extra["params_source"] == DEFAULTS


def test_tune_fresh_starts_the_study_over_and_train_prints_where_its_parameters_came_from(logs, settings, tuned):
    env = {
        "LEADRADAR_HOME": str(settings.data_dir),
        "LEADRADAR_MLFLOW__MODEL_NAME": "tune-test",
        "LEADRADAR_TRAINING__HORIZONS_DAYS": "[30]",
        "LEADRADAR_TRAINING__TRANSITION_MODELS": "false",
        "LEADRADAR_TRAINING__NUM_BOOST_ROUND": "40",
    }
    paths = logs[0].paths()
    inputs = ["--events", str(paths["events"]), "--stages", str(paths["stages"])]
    fresh = CliRunner().invoke(app, ["tune", *inputs, "--trials", "1", "--fresh", "--json"], env=env)
    assert fresh.exit_code == 0, fresh.output
    assert optuna.load_study(study_name=tuned.study, storage=tuned.storage).trials.__len__() == 1
    trained = CliRunner().invoke(app, ["train", *inputs], env=env)
    assert trained.exit_code == 0, trained.output
    assert f"LightGBM parameters: study {tuned.study}" in " ".join(trained.output.split())
