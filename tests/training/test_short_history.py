"""Short histories train by rolling origin with intervals; too little is refused, saying what is missing."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from leadradar.cli import app
from leadradar.config import Settings
from leadradar.errors import TooLittleDataError
from leadradar.features.radar_log import RadarLog
from leadradar.features.simulator import SimulationConfig, simulate
from leadradar.training import pipeline

# Each test simulates and trains (tens of seconds): left out of `make test-fast`.
pytestmark = pytest.mark.slow


def history(tmp_path_factory, days: int, leads: int) -> RadarLog:
    out = tmp_path_factory.mktemp(f"history-{days}d")
    simulate(SimulationConfig(tenants=2, leads=leads, days=days, seed=5), Settings()).write(out)
    return RadarLog.from_dir(out)


@pytest.fixture(scope="module")
def four_months(tmp_path_factory) -> RadarLog:
    return history(tmp_path_factory, days=115, leads=4000)


def test_four_months_of_history_train_by_rolling_origin_and_register(four_months, tmp_path):
    settings = Settings(home=tmp_path, mlflow={"model_name": "short"}, training={"bootstrap_resamples": 40})
    result = pipeline.train_from_logs(four_months, settings, use_tuned=False)
    assert result.model_version == "1"
    assert result.extra["backtest"]["kind"] == "rolling_origin" and len(result.extra["backtest"]["folds"]) >= 2
    assert result.extra["served_model"] == "refit"
    metrics = result.test_metrics
    for name in ("auc", "logloss", "brier", "ece", "mean_abs_err_vs_truth"):
        assert metrics[f"{name}_lo"] <= metrics[name] <= metrics[f"{name}_hi"], name
    assert metrics["auc"] > 0.75  # a real model, not a refusal dressed up


def test_too_few_wins_are_refused_naming_the_count_and_the_setting(four_months, tmp_path):
    settings = Settings(home=tmp_path, training={"min_positives": 1_000_000})
    with pytest.raises(TooLittleDataError, match=r"rows win within 30 days .*training\.min_positives.* more weeks"):
        pipeline.train_from_logs(four_months, settings, use_tuned=False)


def test_a_tiny_history_is_refused_in_one_line_naming_the_labelled_cutoffs_and_more_history(tmp_path_factory, tmp_path):
    tiny = history(tmp_path_factory, days=75, leads=600)
    result = CliRunner().invoke(
        app,
        ["train", "--events", str(tiny.events), "--stages", str(tiny.stages), "--no-tuned"],
        env={"LEADRADAR_HOME": str(tmp_path)},
    )
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "labelled cutoffs" in message and "training.min_labelled_cutoffs" in message
    assert "more weeks of history would do" in message


def test_a_short_history_can_be_tuned_on_a_split_by_lead(four_months, tmp_path):
    settings = Settings(home=tmp_path, mlflow={"model_name": "short-tune"})
    result = pipeline.tune_from_logs(four_months, settings, n_trials=2, progress=False)
    assert result.trials_complete + result.trials_pruned == 2 and result.best_params


def test_eight_weekly_cutoffs_train_register_and_score(tmp_path_factory, tmp_path):
    days = 96  # the first cutoff a week in, eight weekly cutoffs whose 30-day window has closed
    log = history(tmp_path_factory, days=days, leads=4000)
    env = {"LEADRADAR_HOME": str(tmp_path), "LEADRADAR_TRAINING__BOOTSTRAP_RESAMPLES": "30"}
    files = ["--events", str(log.events), "--stages", str(log.stages)]
    trained = CliRunner().invoke(app, ["train", *files, "--no-tuned", "--json"], env=env)
    assert trained.exit_code == 0, trained.output
    result = json.loads(trained.stdout.strip().splitlines()[-1])
    window = {k: pd.Timestamp(v) for k, v in result["window"].items()}
    assert (window["last_cutoff"] - window["first_cutoff"]) / pd.Timedelta(weeks=1) + 1 == 8
    assert result["extra"]["backtest"]["kind"] == "rolling_origin"
    assert CliRunner().invoke(app, ["promote"], env=env).exit_code == 0

    end = (pd.Timestamp("2026-01-05", tz="UTC") + pd.Timedelta(days=days)).isoformat()
    out = tmp_path / "scores.parquet"
    scored = CliRunner().invoke(app, ["score", *files, "--as-of", end, "--out", str(out)], env=env)
    assert scored.exit_code == 0, scored.output
    scores = pd.read_parquet(out)
    assert len(scores) > 100 and scores["p_close"].between(0, 1).all()


def test_a_time_split_with_too_few_cutoffs_to_train_on_is_backtested_by_rolling_origin(tmp_path_factory, tmp_path):
    five_months = history(tmp_path_factory, days=150, leads=2000)  # the time split would train on ~2 cutoffs
    settings = Settings(home=tmp_path, mlflow={"model_name": "five"}, training={"bootstrap_resamples": 20})
    result = pipeline.train_from_logs(five_months, settings, use_tuned=False)
    assert result.extra["backtest"]["kind"] == "rolling_origin"
    assert result.extra["refit"]["rounds"] > 10  # the refit no longer inherits a one-cutoff early stop
