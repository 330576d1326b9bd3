"""Bring your own feature table, and Optuna tuning that resumes and carries into training."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from leadradar.cli import app
from leadradar.config import Settings
from leadradar.models.funnel import FunnelModel
from leadradar.registry import CHALLENGER, configure_mlflow, fetch, version_for_alias
from leadradar.training.table import TableError, classify_columns, train_from_table, tune_table


def feature_table(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    region = rng.choice(["east", "south", "north"], n)
    visits = rng.poisson(3, n)
    vip = rng.random(n) < 0.2
    logit = -3 + 0.5 * visits + 1.5 * vip + np.where(region == "east", 1.0, 0.0)
    return pd.DataFrame(
        {
            "visits": visits,
            "dwell": rng.gamma(2, 30, n),
            "vip": vip,
            "region": region,
            "signed_at": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 200, n), unit="D"),
            "won": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int),
        }
    )


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def test_text_and_timestamp_columns_are_refused_naming_each(tmp_path):
    df = feature_table().assign(notes=[f"called on day {i}" for i in range(3000)])
    with pytest.raises(TableError) as err:
        classify_columns(df, "won", None, Settings())
    assert "'notes' looks like free text" in str(err.value) and "'signed_at' is a timestamp" in str(err.value)


@pytest.mark.slow  # about 3 s on 2 cores: left out of `make test-fast`
def test_numeric_boolean_and_categorical_columns_are_used_natively(tmp_path, home):
    path = tmp_path / "leads.parquet"
    feature_table().to_parquet(path)
    settings = Settings(home=home)
    result = train_from_table(path, "won", settings, time_column="signed_at", use_tuned=False)
    assert result.alias == CHALLENGER and result.model_name == "table-leads-won"
    assert result.extra["features"] == {"numeric": ["visits", "dwell", "vip"], "categorical": ["region"]}
    assert result.test_metrics["auc"] > 0.7
    configure_mlflow(settings)
    ref = version_for_alias(MlflowClient(), "table-leads-won", CHALLENGER)
    model = FunnelModel.load(fetch(settings, ref))
    assert model.categorical == ["region"] and model.encoder_.levels_["region"] == ["east", "north", "south"]
    params = MlflowClient().get_run(result.run_id).data.params
    assert params["lgbm_min_data_in_leaf"] == "auto" and params["min_data_in_leaf"] == "20"  # a table's rows: leads


def test_a_time_column_puts_the_latest_rows_in_the_test_period(tmp_path):
    from leadradar.training.table import prepare

    path = tmp_path / "t.csv"
    df = feature_table()
    df.to_csv(path, index=False)
    prep = prepare(path, "won", "signed_at", Settings())
    when = pd.to_datetime(df["signed_at"])
    assert when.iloc[prep.parts["test"]].min() >= when.iloc[prep.parts["validation"]].max()
    assert when.iloc[prep.parts["validation"]].min() >= when.iloc[prep.parts["train"]].max()


def test_without_a_time_column_the_split_is_stratified(tmp_path):
    from leadradar.training.table import prepare

    path = tmp_path / "t.parquet"
    feature_table().drop(columns="signed_at").to_parquet(path)
    prep = prepare(path, "won", None, Settings())
    rates = [prep.frame["target"].iloc[idx].mean() for idx in prep.parts.values()]
    assert max(rates) - min(rates) < 0.01


def test_a_label_that_is_not_binary_is_refused(tmp_path):
    from leadradar.training.table import binary_label

    with pytest.raises(TableError, match="0/1"):
        binary_label(pd.DataFrame({"y": [0, 1, 2]}), "y")


def test_cli_train_table_json(tmp_path, home):
    path = tmp_path / "byo.csv"
    feature_table().drop(columns="signed_at").to_csv(path, index=False)
    r = CliRunner().invoke(
        app,
        ["train", "--table", str(path), "--label", "won", "--json", "--no-tuned"],
        env={"LEADRADAR_HOME": str(home)},
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["model_name"] == "table-byo-won" and out["model_version"] == "1" and out["run_id"]
    assert 0 < out["test_metrics"]["logloss"] < 1


@pytest.mark.slow  # about 6 s on 2 cores: left out of `make test-fast`
def test_tuning_resumes_logs_nested_runs_and_carries_into_train(tmp_path, home):
    path = tmp_path / "tune.parquet"
    feature_table().drop(columns="signed_at").to_parquet(path)
    settings = Settings(home=home, training={"num_boost_round": 200})
    first = tune_table(path, "won", settings, n_trials=3, progress=False)
    second = tune_table(path, "won", settings, n_trials=2, progress=False)
    assert first.trials_total == 3 and second.trials_total == 5  # the study resumed from storage
    study = optuna.load_study(study_name=second.study, storage=second.storage)
    assert len(study.trials) == 5
    client = MlflowClient()
    children = client.search_runs(
        [client.get_experiment_by_name(settings.mlflow.experiment).experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{second.parent_run_id}'",
    )
    assert len(children) == 2
    result = train_from_table(path, "won", settings)
    run = client.get_run(result.run_id)
    assert run.data.tags["params_source"] == f"study {second.study}" == result.extra["params_source"]
    assert second.study.startswith("table-tune-won-target-")
    assert float(run.data.params["lgbm_learning_rate"]) == pytest.approx(study.best_params["learning_rate"])
    tuned_leaf = study.best_params["min_data_in_leaf"]  # a trial's own number is used as given
    assert run.data.params["lgbm_min_data_in_leaf"] == run.data.params["min_data_in_leaf"] == str(tuned_leaf)
