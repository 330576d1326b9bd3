"""Registry and promotion gate: challengers, the champion, rollback, and nothing half-registered."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from leadradar.cli import app
from leadradar.config import Settings
from leadradar.features.radar_log import RadarLog
from leadradar.features.simulator import SimulationConfig, simulate
from leadradar.registry import CHALLENGER, CHAMPION, champion_history, configure_mlflow, version_for_alias
from leadradar.training import pipeline, tracking
from leadradar.training.promotion import beats, promote, rollback

# Each test trains two or three models (about a minute together): left out of `make test-fast`.
pytestmark = pytest.mark.slow


def fast(home, **training) -> Settings:
    """Quick models on a small simulation: one horizon, no transition models."""
    return Settings(
        home=home,
        mlflow={"model_name": "promo-test"},
        training={"horizons_days": (30,), "transition_models": False, **training},
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("promo")
    return simulate(SimulationConfig(tenants=2, leads=4000, days=240, seed=8), Settings()).write(out)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("promo-home")


def train(data, settings):
    log = RadarLog(data["events"], data["stages"], items=data["items"], leads=data["leads"])
    return pipeline.train_from_logs(log, settings, use_tuned=False)


def versions(settings) -> list[str]:
    configure_mlflow(settings)
    return sorted(str(v.version) for v in MlflowClient().search_model_versions(f"name='{settings.mlflow.model_name}'"))


def test_the_gate_wants_lower_log_loss_and_auc_within_tolerance():
    champion = {"logloss": 0.100, "auc": 0.900}
    assert beats({"logloss": 0.099, "auc": 0.896}, champion, 0.005)[0]
    assert not beats({"logloss": 0.101, "auc": 0.950}, champion, 0.005)[0]
    ok, why = beats({"logloss": 0.090, "auc": 0.894}, champion, 0.005)
    assert not ok and "AUC" in why


def test_first_model_becomes_champion_then_a_weaker_challenger_is_refused_and_a_better_one_wins(data, home):
    good = fast(home)
    first = train(data, good)
    assert first.alias == CHALLENGER
    verdict = promote(good)
    assert verdict.promoted and "first champion" in verdict.reason

    weak = fast(
        home, num_boost_round=3, lgbm_params={**good.training.lgbm_params, "learning_rate": 0.01, "num_leaves": 2}
    )
    second = train(data, weak)
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["promote"],
        env={
            "LEADRADAR_HOME": str(home),
            "LEADRADAR_MLFLOW__MODEL_NAME": "promo-test",
            "LEADRADAR_TRAINING__TRANSITION_MODELS": "false",
        },
    )
    assert result.exit_code == 1, result.output
    assert "refused" in result.output and f"challenger v{second.model_version}" in result.output
    assert f"champion v{first.model_version}" in result.output  # both sets of numbers are shown
    client = MlflowClient()
    assert version_for_alias(client, "promo-test", CHAMPION).version == first.model_version

    better = fast(home, lgbm_params={**good.training.lgbm_params, "num_leaves": 63, "min_data_in_leaf": 100})
    third = train(data, better)
    verdict = promote(better)
    if verdict.promoted:
        assert version_for_alias(client, "promo-test", CHAMPION).version == third.model_version
        assert champion_history(client, "promo-test")[-1] == first.model_version
        restored, replaced = rollback(better)
        assert (restored.version, replaced.version) == (first.model_version, third.model_version)
        assert version_for_alias(client, "promo-test", CHAMPION).version == first.model_version
    else:  # the gate judged on numbers; a refusal must show them
        assert verdict.challenger_metrics and verdict.champion_metrics
        assert not beats(verdict.challenger_metrics, verdict.champion_metrics, 0.005)[0]


def test_rollback_without_history_is_refused_clearly(home):
    settings = Settings(home=home, mlflow={"model_name": "never-trained"})
    configure_mlflow(settings)
    MlflowClient().create_registered_model("never-trained")
    with pytest.raises(LookupError, match="no previous champion"):
        rollback(settings)


def test_a_run_that_fails_after_registering_leaves_no_version_behind(data, home, monkeypatch):
    settings = fast(home, num_boost_round=20)
    before = versions(settings)

    def broken(*args, **kwargs):
        raise RuntimeError("registry went away")

    monkeypatch.setattr(tracking, "set_alias", broken)
    with pytest.raises(RuntimeError, match="registry went away"):
        train(data, settings)
    assert versions(settings) == before
    runs = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name(settings.mlflow.experiment).experiment_id],
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    assert runs[0].info.status == "FINISHED"  # logged fully; only the registration was undone


def test_a_run_that_fails_before_registering_registers_nothing(data, home, monkeypatch):
    settings = fast(home, num_boost_round=20)
    before = versions(settings)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tracking.mlflow.pyfunc, "log_model", broken)
    with pytest.raises(OSError):
        train(data, settings)
    assert versions(settings) == before
    client = MlflowClient()
    exp = client.get_experiment_by_name(settings.mlflow.experiment)
    assert (
        client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)[0].info.status
        == "FAILED"
    )


def test_the_cli_train_json_is_one_object_with_run_model_version_and_metrics(data, home):
    result = CliRunner().invoke(
        app,
        ["train", "--events", str(data["events"]), "--stages", str(data["stages"]), "--json", "--no-tuned"],
        env={
            "LEADRADAR_HOME": str(home),
            "LEADRADAR_MLFLOW__MODEL_NAME": "promo-json",
            "LEADRADAR_TRAINING__TRANSITION_MODELS": "false",
            "LEADRADAR_TRAINING__NUM_BOOST_ROUND": "30",
        },
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["model_name"] == "promo-json" and payload["run_id"] and payload["model_version"] == "1"
    assert {"auc", "logloss", "ece", "baseline_logloss_points", "baseline_logloss_logistic"} <= set(
        payload["test_metrics"]
    )
