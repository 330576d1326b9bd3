"""The test-period evaluation: metrics at k, per group, the report MLflow receives, and its plots."""

from __future__ import annotations

import json
import math
import posixpath
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadradar.training import plots
from leadradar.training.evaluation import compare_direct_and_chained, evaluate_test_period, key_part
from leadradar.training.metrics import classification_metrics, metrics_by, precision_recall_at_k

MLFLOW_KEY = re.compile(r"^[A-Za-z0-9_\-. /]+$")
PNG = b"\x89PNG\r\n\x1a\n"


def scored_rows(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Rows with a tenant and a stage, the truth, labels drawn from it, and a model near the truth."""
    rng = np.random.default_rng(seed)
    p_true = rng.beta(1, 8, n)
    y = (rng.random(n) < p_true).astype(int)
    p_model = np.clip(p_true + rng.normal(scale=0.03, size=n), 0.001, 0.999)
    keys = pd.DataFrame(
        {
            "tenant_id": rng.choice(["t01", "华东 tenant/2"], n),
            "stage": rng.choice(["new", "engaged", "proposal"], n),
        }
    )
    return keys, y, p_model, p_true


def test_precision_and_recall_at_k_match_a_count_by_hand() -> None:
    y = np.array([1, 0, 1, 0, 0, 1])
    p = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    got = precision_recall_at_k(y, p, ks=(1, 2, 3, 50))
    assert got["precision_at_1"] == 1.0 and got["recall_at_1"] == pytest.approx(1 / 3)
    assert got["precision_at_2"] == 0.5 and got["recall_at_2"] == pytest.approx(1 / 3)
    assert got["precision_at_3"] == pytest.approx(2 / 3) and got["recall_at_3"] == pytest.approx(2 / 3)
    assert got["precision_at_50"] == 0.5 and got["recall_at_50"] == 1.0  # k beyond the rows takes them all


def test_tied_scores_count_at_k_by_their_share_not_by_row_order() -> None:
    y = np.array([0, 0, 1, 1])
    got = precision_recall_at_k(y, np.full(4, 0.3), ks=(2,))
    assert got["precision_at_2"] == 0.5 and got["recall_at_2"] == 0.5


def test_metrics_by_tenant_keep_each_tenant_apart() -> None:
    keys = pd.DataFrame({"tenant_id": ["a", "a", "a", "b", "b"]})
    y = np.array([1, 0, 0, 0, 0])
    p = np.array([0.8, 0.2, 0.1, 0.3, 0.1])
    got = metrics_by(keys, y, p, by="tenant_id")
    assert set(got) == {"a", "b"}
    assert got["a"]["rows"] == 3 and got["a"]["positives"] == 1
    assert got["a"]["base_rate"] == pytest.approx(1 / 3) and got["a"]["auc"] == 1.0
    assert got["a"]["mean_p"] == pytest.approx(1.1 / 3)
    assert math.isnan(got["b"]["auc"])  # one class only
    assert got["b"]["logloss"] == pytest.approx(-(np.log(0.7) + np.log(0.9)) / 2)


def test_the_report_scores_model_and_baselines_on_the_same_rows() -> None:
    keys, y, p_model, p_true = scored_rows()
    baselines = {"base_rate": np.full(len(y), y.mean()), "points": np.clip(p_true * 0.5 + 0.05, 0, 1)}
    report = evaluate_test_period(keys, y, p_model, baselines, p_true, bins=10)
    assert report.rows == len(y)
    assert report.model["auc"] > report.baselines["base_rate"]["auc"]
    assert report.model["truth_coverage"] == 1.0
    assert report.model["oracle_auc"] > 0.5
    assert report.baselines["points"]["mean_abs_err_vs_truth"] > report.model["mean_abs_err_vs_truth"]
    assert "oracle_auc" not in report.baselines["points"]
    assert set(report.by_stage) == {"new", "engaged", "proposal"}
    assert sum(g["rows"] for g in report.by_tenant.values()) == len(y)
    table = report.comparison()
    assert list(table.index) == ["model", "base_rate", "points"]


def test_flat_metrics_are_valid_mlflow_keys_with_finite_values() -> None:
    keys, y, p_model, p_true = scored_rows()
    y[(keys["stage"] == "engaged").to_numpy()] = 0  # one class: its AUC is NaN and must be left out
    report = evaluate_test_period(
        keys,
        y,
        p_model,
        {"points": p_true, "logistic": p_model},
        p_true,
        p_chained=p_true,
    )
    flat = report.flat_metrics("test")
    for key, value in flat.items():
        assert MLFLOW_KEY.match(key) and posixpath.normpath(key) == key and len(key) <= 250, key
        assert isinstance(value, float) and math.isfinite(value), key
    for key in (
        "test_auc",
        "test_logloss",
        "test_baseline_logloss_points",
        "test_by_stage_proposal_auc",
        "test_precision_at_50",
        "test_oracle_auc",
        "test_chained_logloss",
        "test_chained_better",
    ):
        assert key in flat, key
    assert "test_by_stage_engaged_auc" not in flat
    assert "test_by_stage_engaged_logloss" in flat
    assert len([k for k in flat if k.startswith("test_by_tenant_") and k.endswith("_rows")]) == 2


def test_names_that_are_not_key_safe_stay_distinct() -> None:
    assert key_part("proposal") == "proposal"
    assert key_part("华东") != key_part("华南")
    assert MLFLOW_KEY.match(key_part("华东 tenant/2"))


def test_report_to_dict_is_strict_json() -> None:
    keys, y, p_model, _ = scored_rows()
    report = evaluate_test_period(keys, y, p_model, {"base_rate": np.full(len(y), 0.1)}, None)
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert json.loads(text)["baselines"]["base_rate"]["auc"] == 0.5


def test_truth_metrics_use_only_rows_the_simulator_covered() -> None:
    keys, y, p_model, p_true = scored_rows()
    p_true = p_true.copy()
    p_true[::4] = np.nan
    report = evaluate_test_period(keys, y, p_model, {}, p_true)
    assert report.model["truth_coverage"] == pytest.approx(0.75)
    assert math.isfinite(report.model["mean_abs_err_vs_truth"])


def test_bad_inputs_are_named() -> None:
    keys, y, p_model, _ = scored_rows()
    with pytest.raises(ValueError, match="baseline 'points'"):
        evaluate_test_period(keys, y, p_model, {"points": p_model * 3}, None)
    with pytest.raises(ValueError, match="model: 10 probabilities"):
        evaluate_test_period(keys, y, p_model[:10], {}, None)


@pytest.mark.parametrize("chained_is_truth", [True, False])
def test_compare_direct_and_chained_picks_the_lower_log_loss(chained_is_truth: bool) -> None:
    _, y, _p_model, p_true = scored_rows(2000, seed=3)
    far = np.clip(p_true * 3, 0, 1)
    direct, chained = (far, p_true) if chained_is_truth else (p_true, far)
    got = compare_direct_and_chained(y, direct, chained)
    assert got["better"] == ("chained" if chained_is_truth else "direct")
    winner, loser = got[got["better"]], got["direct" if chained_is_truth else "chained"]
    assert winner["logloss"] < loser["logloss"]
    assert set(winner) == {"logloss", "auc", "brier"}


@pytest.mark.slow  # about 9 s on 2 cores: left out of `make test-fast`
def test_the_metrics_equal_scikit_learns_on_random_scores_with_ties_and_one_class() -> None:
    """`classification_metrics` computes AUC and PR AUC from one sort of its own: on 2,000 random sets (scores
    rounded into ties, all equal, a single class) every figure equals scikit-learn's to a few units of rounding."""
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    rng = np.random.default_rng(5)
    for i in range(2000):
        n = int(rng.integers(2, 300))
        p = rng.beta(1, 5, n)
        p = np.round(p, 1) if i % 3 == 0 else np.full(n, 0.3) if i % 7 == 0 else p
        y = np.zeros(n, dtype=int) if i % 11 == 0 else (rng.random(n) < p).astype(int)
        got, clipped = classification_metrics(y, p), np.clip(p, 1e-6, 1 - 1e-6)
        assert got["logloss"] == pytest.approx(log_loss(y, clipped, labels=[0, 1]), rel=1e-12, abs=1e-15)
        assert got["brier"] == pytest.approx(brier_score_loss(y, clipped), rel=1e-12, abs=1e-15)
        if 0 < y.sum() < n:
            assert got["auc"] == pytest.approx(roc_auc_score(y, clipped), rel=1e-12)
            assert got["pr_auc"] == pytest.approx(average_precision_score(y, clipped), rel=1e-12)
        else:
            assert math.isnan(got["auc"]) and math.isnan(got["pr_auc"])
    with pytest.raises(ValueError, match="1 of 3 probabilities are NaN"):
        classification_metrics(np.array([0, 1, 0]), np.array([0.1, np.nan, 0.2]))


def test_every_log_loss_and_auc_in_training_is_the_one_definition() -> None:
    """Per group, against the oracle, direct against chained, and the calibrators' choice: the same log loss and
    AUC as `classification_metrics`, and a NaN probability refused by each, as scikit-learn refused it."""
    from leadradar.models.calibration import log_loss
    from leadradar.training.metrics import group_metrics, truth_metrics

    rng = np.random.default_rng(9)
    p, q = rng.beta(1, 5, 500), rng.beta(1, 5, 500)
    y = (rng.random(500) < p).astype(int)
    whole = classification_metrics(y, p)
    assert group_metrics(y, p)["logloss"] == whole["logloss"] == log_loss(y, p)
    assert group_metrics(y, p)["auc"] == whole["auc"]
    oracle = truth_metrics(y, q, p)
    assert (oracle["oracle_auc"], oracle["oracle_logloss"]) == (whole["auc"], whole["logloss"])
    assert math.isnan(group_metrics(np.zeros(4, dtype=int), p[:4])["auc"])
    got = compare_direct_and_chained(y, p, q)
    assert (got["direct"]["logloss"], got["direct"]["auc"]) == (whole["logloss"], whole["auc"])
    nan = np.array([0.1, np.nan, 0.2, np.nan])
    for call in (
        lambda: group_metrics(y[:4], nan),
        lambda: truth_metrics(y[:4], p[:4], nan),
        lambda: log_loss(y[:4], nan),
    ):
        with pytest.raises(ValueError, match="2 of 4 probabilities are NaN"):
            call()


def test_a_constant_score_gains_like_calling_at_random() -> None:
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    x, g = plots.gains_curve(y, np.full(len(y), 0.2))
    assert np.interp(0.5, x, g) == pytest.approx(0.5)
    x, g = plots.gains_curve(y, y.astype(float))
    assert np.interp(0.2, x, g) == pytest.approx(1.0)


def test_every_new_plot_writes_a_png(tmp_path: Path) -> None:
    _keys, y, p_model, p_true = scored_rows()
    rng = np.random.default_rng(1)
    names = [f"feature_{i}" for i in range(30)] + ["attr_industry"]
    values = rng.normal(size=(len(y), len(names)))
    values[rng.random(values.shape) < 0.1] = np.nan
    contributions = rng.normal(size=(len(y), len(names) + 1))  # LightGBM adds the bias column
    written = [
        plots.cumulative_gains(y, {"model": p_model, "truth": p_true}, tmp_path / "gains.png"),
        plots.feature_importance(names, rng.random(len(names)), tmp_path / "importance.png", top=10),
        plots.shap_summary(
            names, contributions, values, tmp_path / "shap.png", top=8, max_rows=300, categorical=["attr_industry"]
        ),
    ]
    for path in written:
        assert path.exists() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="shap_summary"):
        plots.shap_summary(names, contributions[:, :5], values, tmp_path / "bad.png")


def test_direct_and_chained_are_compared_where_the_chain_exists() -> None:
    _, y, p_model, p_true = scored_rows(400, seed=4)
    chained = p_true.copy()
    chained[:100] = np.nan
    got = compare_direct_and_chained(y, p_model, chained)
    assert got["rows"] == 300 and got["coverage"] == 0.75
    with pytest.raises(ValueError, match="p_chained"):
        compare_direct_and_chained(y, p_model, np.full(len(y), np.nan))
