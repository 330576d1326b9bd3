"""Promotion that can be audited: verdicts and rollbacks recorded on the versions and in MLflow, overrides with
a reason, `leadradar models` showing both aliases, and no challenger taken silently."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from leadradar.cli import app
from leadradar.config import Settings
from leadradar.features.radar_log import RadarLog
from leadradar.features.simulator import SimulationConfig, simulate
from leadradar.registry import CHAMPION, configure_mlflow, version_for_alias
from leadradar.training import pipeline

# Trains four small models (about a minute): left out of `make test-fast`.
pytestmark = pytest.mark.slow
NAME = "audit-test"


@pytest.fixture(scope="module")
def log(tmp_path_factory) -> RadarLog:
    out = tmp_path_factory.mktemp("audit")
    paths = simulate(SimulationConfig(tenants=1, leads=3000, days=240, seed=12), Settings()).write(out)
    return RadarLog(paths["events"], paths["stages"], items=paths["items"], leads=paths["leads"])


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("audit-home")


def settings_of(home, **training) -> Settings:
    base = {"horizons_days": (30,), "transition_models": False, "num_boost_round": 40}
    return Settings(home=home, mlflow={"model_name": NAME}, training={**base, **training})


def cli(home, *args: str):
    env = {
        "COLUMNS": "200",
        "LEADRADAR_HOME": str(home),
        "LEADRADAR_MLFLOW__MODEL_NAME": NAME,
        "LEADRADAR_TRAINING__HORIZONS_DAYS": "[30]",
        "LEADRADAR_TRAINING__TRANSITION_MODELS": "false",
    }
    return CliRunner().invoke(app, list(args), env=env)


def tags_of(settings: Settings, version: str) -> dict[str, str]:
    configure_mlflow(settings)
    return dict(MlflowClient().get_model_version(NAME, version).tags)


def runs_of_kind(settings: Settings, kind: str) -> list:
    client = MlflowClient()
    exp = client.get_experiment_by_name(settings.mlflow.experiment)
    return client.search_runs([exp.experiment_id], filter_string=f"tags.kind = '{kind}'")


def test_verdicts_overrides_and_rollbacks_are_recorded_and_models_lists_both_aliases(log, home):
    good = settings_of(home)
    first = pipeline.train_from_logs(log, good, use_tuned=False)
    assert cli(home, "promote").exit_code == 0
    assert tags_of(good, first.model_version)["gate.verdict"] == "promoted"

    weak = settings_of(home, num_boost_round=3, lgbm_params={**good.training.lgbm_params, "num_leaves": 2})
    second = pipeline.train_from_logs(log, weak, use_tuned=False)
    refused = cli(home, "promote", "--json")
    assert refused.exit_code == 1, refused.output
    tags = tags_of(good, second.model_version)
    assert tags["gate.verdict"] == "refused" and tags["gate.champion_version"] == first.model_version
    assert float(tags["gate.challenger.logloss"]) >= float(tags["gate.champion.logloss"])
    assert int(tags["gate.holdout_rows"]) > 0 and tags["gate.by"] and tags["gate.at"]

    no_reason = cli(home, "promote", "--force")
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    forced = cli(home, "promote", "--force", "--reason", "the CRM changed its stage codes last week")
    assert forced.exit_code == 0, forced.output
    tags = tags_of(good, second.model_version)
    assert tags["gate.verdict"] == "forced" and tags["gate.why"] == "the CRM changed its stage codes last week"
    assert version_for_alias(MlflowClient(), NAME, CHAMPION).version == second.model_version
    assert len(runs_of_kind(good, "promotion")) == 3

    back = cli(home, "rollback", "--reason", "forced model mis-ranks region east")
    assert back.exit_code == 0, back.output
    for version in (first.model_version, second.model_version):
        tags = tags_of(good, version)
        assert tags["rollback.why"] == "forced model mis-ranks region east"
        assert (tags["rollback.restored_version"], tags["rollback.replaced_version"]) == (
            first.model_version,
            second.model_version,
        )
    (run,) = runs_of_kind(good, "rollback")
    assert run.data.tags["rollback.by"]

    third = pipeline.train_from_logs(log, good, use_tuned=False)
    listed = cli(home, "models", "--json")
    assert listed.exit_code == 0, listed.output
    both = json.loads(listed.stdout.strip().splitlines()[-1])
    assert (both["champion"]["version"], both["challenger"]["version"]) == (first.model_version, third.model_version)
    for entry in both.values():
        assert entry["window"]["first_cutoff"] and entry["metrics"]["auc"] > 0.5 and entry["params_source"]
    assert both["champion"]["gate"]["verdict"] == "promoted" and both["challenger"]["gate"] == {}
    table = cli(home, "models")
    assert table.exit_code == 0 and f"v{third.model_version}" in table.output and "not judged yet" in table.output


def test_a_challenger_the_gate_never_judged_is_not_taken_silently(log, home):
    settings = settings_of(home, num_boost_round=20)
    one = pipeline.train_from_logs(log, settings, use_tuned=False)
    two = pipeline.train_from_logs(log, settings, use_tuned=False)
    assert tags_of(settings, two.model_version)["challenger.replaced"] == one.model_version
    assert tags_of(settings, one.model_version)["challenger.replaced_by"] == two.model_version
