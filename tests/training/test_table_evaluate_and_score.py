"""Tables: cross-validated figures beside the baselines, and a new table scored by a registered table model."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from leadradar.cli import app
from tests.training.test_table_and_tuning import feature_table

# Cross-validation fits fifteen models, scoring trains and promotes one: seconds each, left out of `make test-fast`.
pytestmark = pytest.mark.slow


def run(home, *args: str):
    return CliRunner().invoke(
        app, list(args), env={"LEADRADAR_HOME": str(home), "LEADRADAR_TRAINING__BOOTSTRAP_RESAMPLES": "40"}
    )


def test_evaluate_cv_prints_leadradar_beside_lightgbm_defaults_and_logistic_with_intervals(tmp_path):
    path = tmp_path / "leads.csv"
    feature_table(1500).drop(columns="signed_at").to_csv(path, index=False)
    shown = run(tmp_path / "home", "evaluate", "--table", str(path), "--label", "won", "--cv", "3")
    assert shown.exit_code == 0, shown.output
    assert all(name in shown.output for name in ("leadradar", "lightgbm_defaults", "logistic"))

    result = run(tmp_path / "home", "evaluate", "--table", str(path), "--label", "won", "--cv", "3", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["folds"] == 3 and payload["rows"] == 1500
    for name, figures in payload["scorers"].items():
        for k in ("auc", "logloss", "ece"):
            assert figures[f"{k}_lo"] <= figures[k] <= figures[f"{k}_hi"], (name, k)
            assert figures[f"{k}_fold_sd"] >= 0
    assert payload["scorers"]["leadradar"]["auc"] > 0.7


def test_evaluate_names_a_missing_label_in_one_line(tmp_path):
    path = tmp_path / "leads.csv"
    feature_table(300).drop(columns="signed_at").to_csv(path, index=False)
    result = run(tmp_path / "home", "evaluate", "--table", str(path), "--label", "closed")
    assert result.exit_code == 2
    assert "label column 'closed' is not in the table" in result.output and "Traceback" not in result.output


def test_score_table_ranks_a_prospect_list_without_its_label(tmp_path):
    home = tmp_path / "home"
    train = tmp_path / "leads.parquet"
    feature_table(2000).drop(columns="signed_at").to_parquet(train)
    assert run(home, "train", "--table", str(train), "--label", "won", "--no-tuned").exit_code == 0
    assert run(home, "promote", "--model-name", "table-leads-won").exit_code == 0

    prospects = tmp_path / "prospects.csv"
    feature_table(400, seed=9).drop(columns=["signed_at", "won"]).to_csv(prospects, index=False)
    out = tmp_path / "scored.csv"
    result = run(home, "score", "--table", str(prospects), "--model", "table-leads-won", "--out", str(out))
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(out)
    assert len(scored) == 400 and scored["probability"].between(0, 1).all()
    assert scored["rank"].tolist() == list(range(1, 401))
    assert scored["probability"].is_monotonic_decreasing
    assert scored["reasons"].fillna("").str.contains(r"(?:visits|vip|region|dwell) = ").mean() > 0.5

    broken = tmp_path / "broken.csv"
    feature_table(50, seed=2).drop(columns=["signed_at", "won", "visits"]).to_csv(broken, index=False)
    refused = run(home, "score", "--table", str(broken), "--model", "table-leads-won", "--out", str(tmp_path / "x.csv"))
    assert refused.exit_code == 2 and "lacks" in refused.output and "visits" in refused.output
