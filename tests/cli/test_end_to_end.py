"""The spine end to end: simulated logs → features → LightGBM → MLflow registry → BentoML over HTTP → ranked list."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from leadradar.cli import app
from leadradar.features.build import compute_features
from leadradar.features.registry import build_registry
from leadradar.features.simulator import SimulationConfig, simulation_end
from leadradar.registry import configure_mlflow, load_alias
from leadradar.serving.scoring import SCORE_COLUMNS
from tests.conftest import SMALL


def as_of_end() -> pd.Timestamp:
    return pd.Timestamp(simulation_end(SimulationConfig(**SMALL)), tz="UTC").as_unit("us")


def test_train_json_names_run_model_version_and_test_metrics(trained):
    assert trained["model_name"] == "leadradar-close"
    assert trained["alias"] == "challenger"
    assert trained["promotion"]["promoted"], trained["promotion"]  # the first model becomes champion
    assert int(trained["model_version"]) >= 1
    for key in ("auc", "pr_auc", "logloss", "brier", "ece", "oracle_auc", "mean_abs_err_vs_truth"):
        assert np.isfinite(trained["test_metrics"][key]), key
    assert trained["test_metrics"]["truth_coverage"] > 0.99


def test_test_period_auc_is_within_005_of_the_oracle(trained):
    m = trained["test_metrics"]
    assert m["oracle_auc"] - m["auc"] <= 0.05, m


def test_probabilities_are_calibrated_on_the_test_period(trained):
    m = trained["test_metrics"]
    assert m["ece"] <= 0.02, m
    p = m["base_rate"]
    base_rate_logloss = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    assert m["logloss"] < base_rate_logloss, m


def test_every_split_is_separated_by_one_horizon(trained):
    split = trained["window"]
    assert pd.Timestamp(split["first_cutoff"]) < pd.Timestamp(split["last_cutoff"])
    assert trained["rows"]["train"] > 0 and trained["rows"]["validation"] > 0 and trained["rows"]["test"] > 0


def test_the_run_holds_metrics_plots_features_and_lineage(trained, settings):
    configure_mlflow(settings)
    client = MlflowClient()
    run = client.get_run(trained["run_id"])
    assert run.data.metrics["test_auc"] == pytest.approx(trained["test_metrics"]["auc"])
    assert run.data.tags["feature_definition_hash"] == trained["definition_hash"]
    assert run.data.tags["code_version"]
    arts = {a.path for a in client.list_artifacts(trained["run_id"], "plots")}
    assert {"plots/reliability.png", "plots/roc.png", "plots/precision_recall.png"} <= arts
    mv = client.get_model_version_by_alias("leadradar-close", "champion")
    assert str(mv.version) == trained["model_version"]
    assert mv.tags["feature_definition_hash"] == trained["definition_hash"]


def test_the_bundle_carries_its_feature_list_and_definitions(trained, settings):
    loaded = load_alias(settings)
    assert loaded.ref.version == trained["model_version"]
    assert loaded.model.features == build_registry(settings).names
    assert loaded.meta["definition_hash"] == trained["definition_hash"]


def test_batch_score_writes_every_open_lead_and_rank_prints_the_top(trained, small_sim, settings, tmp_path):
    out = tmp_path / "scores.parquet"
    runner = CliRunner()
    env = {"LEADRADAR_HOME": str(settings.data_dir)}
    r = runner.invoke(
        app,
        [
            "score",
            "--events",
            str(small_sim.events),
            "--stages",
            str(small_sim.stages),
            "--as-of",
            as_of_end().isoformat(),
            "--out",
            str(out),
        ],
        env=env,
    )
    assert r.exit_code == 0, r.output
    scores = pd.read_parquet(out)
    assert list(scores.columns) == SCORE_COLUMNS
    assert scores["p_close"].between(0, 1).all()
    assert (scores["model_version"] == trained["model_version"]).all()
    assert not scores.duplicated(["tenant_id", "lead_id"]).any()
    assert set(scores["stage"]) <= {"new", "engaged", "contacted", "qualified", "proposal"}
    tenant = scores["tenant_id"].iloc[0]
    r = runner.invoke(app, ["rank", "--tenant", tenant, "--limit", "5"], env=env)
    assert r.exit_code == 0, r.output
    top = scores[scores.tenant_id == tenant].sort_values("p_close", ascending=False).iloc[0]
    assert top["lead_id"] in r.stdout


def test_http_scores_equal_in_process_predictions(server, small_sim, settings, system_key):
    loaded = load_alias(settings)
    feats = compute_features(
        small_sim.events,
        small_sim.stages,
        [as_of_end()],
        settings,
        build_registry(settings),
        small_sim.items,
        leads=small_sim.leads,
    )
    sample = feats[feats["tenant_id"] == "t01"].sample(40, random_state=0)
    body = {
        "leads": [
            {"lead_id": r["lead_id"], "features": {f: (None if pd.isna(r[f]) else r[f]) for f in loaded.model.features}}
            for r in sample.to_dict("records")
        ]
    }
    resp = httpx.post(
        server.url + "/v1/score", json=body, headers={"Authorization": f"Bearer {system_key}"}, timeout=30
    )
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["model_version"] == loaded.ref.version
    funnel = loaded.model.predict_funnel(sample, list(settings.funnel.open_stages))
    assert [a["lead_id"] for a in answer["leads"]] == sample["lead_id"].tolist()
    for h in ("7d", "30d"):
        np.testing.assert_allclose(
            [a["p_close"][h] for a in answer["leads"]], funnel[f"p_close_{h}"], rtol=0, atol=1e-9
        )
    np.testing.assert_allclose([a["p_advance"] for a in answer["leads"]], funnel["p_advance"], rtol=0, atol=1e-9)


def test_health_and_a_row_missing_features_gets_a_clear_4xx(server, system_key):
    assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
    assert httpx.get(server.url + "/readyz", timeout=5).status_code == 200
    auth = {"Authorization": f"Bearer {system_key}"}
    resp = httpx.post(
        server.url + "/v1/score",
        json={"leads": [{"lead_id": "x", "features": {"n_card_view_7d": 1}}]},
        headers=auth,
        timeout=10,
    )
    assert (
        resp.status_code == 422 and "lacks" in resp.text and resp.json()["detail"][0]["loc"][:3] == ["body", "leads", 0]
    )
    resp = httpx.post(
        server.url + "/v1/score", content=b"{not json", headers={**auth, "content-type": "application/json"}, timeout=10
    )
    assert resp.status_code == 422


def test_until_drops_everything_after_it(small_sim, settings):
    from leadradar.features.radar_log import RadarLog
    from leadradar.features.trainset import build_training_set

    until = pd.Timestamp("2026-06-01", tz="UTC")
    ts = build_training_set(RadarLog(small_sim.events, small_sim.stages), settings, until=until)
    assert ts.data_until == until
    assert ts.last_cutoff + pd.Timedelta(days=settings.training.horizon_days) <= until
    assert ts.frame["cutoff"].max() <= until - pd.Timedelta(days=settings.training.horizon_days)
    assert json.loads(json.dumps(ts.window))["data_until"].startswith("2026-06-01")
