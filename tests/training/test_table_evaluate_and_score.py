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


def with_ids(n: int, seed: int = 0) -> pd.DataFrame:
    """A table as exported from a CRM: an id per row and a signing date kept as text beside the features."""
    df = feature_table(n, seed)
    return df.assign(prospect_id=[f"P-{seed}-{i:05d}" for i in range(n)], signed_at=df["signed_at"].astype(str))


def test_ignored_columns_are_left_out_of_training_evaluation_and_the_promotion_holdout(tmp_path):
    home, path = tmp_path / "home", tmp_path / "crm export.csv"
    with_ids(1500).to_csv(path, index=False)
    refused = run(home, "train", "--table", str(path), "--label", "won", "--no-tuned")
    assert refused.exit_code == 2 and "--ignore 'prospect_id'" in refused.output and "Traceback" not in refused.output

    ignore = ["--ignore", "prospect_id", "--ignore", "signed_at"]
    first = run(home, "train", "--table", str(path), "--label", "won", "--no-tuned", *ignore)
    assert first.exit_code == 0, first.output
    assert "next: `leadradar promote --model-name table-crm_export-won`" in " ".join(first.output.split())
    assert run(home, "promote", "--model-name", "table-crm_export-won").exit_code == 0
    shown = run(home, "models", "--model-name", "table-crm_export-won", "--json")
    assert json.loads(shown.stdout.strip().splitlines()[-1])["champion"]["window"] == {"split": "stratified"}
    trained = run(home, "train", "--table", str(path), "--label", "won", "--no-tuned", "--json", *ignore)
    assert json.loads(trained.stdout.strip().splitlines()[-1])["model_version"] == "2"
    # v2 against the champion v1 on v2's holdout, rebuilt from the table without the ignored columns
    judged = run(home, "promote", "--model-name", "table-crm_export-won", "--json")
    assert judged.exit_code in (0, 1), judged.output
    assert json.loads(judged.stdout.strip().splitlines()[-1])["holdout"]["rows"] == 300

    evaluated = run(home, "evaluate", "--table", str(path), "--label", "won", "--cv", "2", "--json", *ignore)
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])["ignored"] == ["prospect_id", "signed_at"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--ignore", "lead_no"], "--ignore 'lead_no' is not in the table"),
        (["--ignore", "won"], "--ignore 'won' is the label"),
    ],
)
def test_an_ignored_column_the_table_lacks_or_the_label_is_one_line(tmp_path, args, said):
    path = tmp_path / "leads.csv"
    with_ids(200).to_csv(path, index=False)
    result = run(tmp_path / "home", "evaluate", "--table", str(path), "--label", "won", *args)
    assert result.exit_code == 2 and said in result.output and "Traceback" not in result.output


def test_ignore_without_a_table_and_models_without_a_lead_model_name_the_way(tmp_path):
    home = tmp_path / "home"
    result = run(home, "train", "--events", str(tmp_path / "e.parquet"), "--ignore", "x")
    assert result.exit_code == 2 and "--ignore leaves columns out of a --table" in result.output
    path = tmp_path / "leads.csv"
    feature_table(600).drop(columns="signed_at").to_csv(path, index=False)
    assert run(home, "train", "--table", str(path), "--label", "won", "--no-tuned").exit_code == 0
    for command in (["models"], ["promote"]):
        shown = run(home, *command)
        assert shown.exit_code != 0 and "table models registered: table-leads-won" in " ".join(shown.output.split())
