"""LightGBM's leaf minimum follows the rows a booster fits (`min_data_in_leaf = "auto"`), and a number is kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from leadradar.config import Settings
from leadradar.models.funnel import FunnelModel, LeafRule, resolved_params
from leadradar.targets import TargetSpec
from leadradar.training.table_evaluation import evaluate_table


def test_the_rule_counts_leads_not_rows_within_its_bounds():
    rule = LeafRule(20, 100)
    # (rows, leads): a table's rows are their own leads; the simulator's worlds hold about five rows a lead
    cases = {(0, 0): 20, (333, 333): 20, (6_000, 6_000): 20, (242, 100): 48, (5_482, 1_000): 100, (73_000, 9_000): 100}
    assert {k: rule.rows_per_leaf(*k) for k in cases} == cases
    assert LeafRule.from_settings(Settings().training) == rule


def test_auto_is_resolved_a_number_is_kept_and_auto_without_a_rule_is_refused():
    params = {"objective": "binary", "min_data_in_leaf": "auto"}
    assert resolved_params(params, 6_000, 2_000, LeafRule(20, 100))["min_data_in_leaf"] == 60
    assert params["min_data_in_leaf"] == "auto", "the caller's parameters were changed"
    fixed = {"objective": "binary", "min_data_in_leaf": 100}
    assert resolved_params(fixed, 300, 300, LeafRule(20, 100)) is fixed
    with pytest.raises(ValueError, match="min_data_in_leaf is 'auto' but no rule"):
        resolved_params(params, 300, 300, None)


@pytest.mark.parametrize(
    ("training", "said"),
    [
        ({"lgbm_params": {"min_data_in_leaf": "lots"}}, "min_data_in_leaf must be 'auto' or a whole number"),
        ({"lgbm_params": {"min_data_in_leaf": 0}}, "min_data_in_leaf must be 'auto' or a whole number"),
        ({"min_data_in_leaf_leads": 0}, "greater than or equal to 1"),
    ],
)
def test_a_leaf_setting_that_cannot_work_is_refused_naming_it(training, said):
    with pytest.raises(ValidationError, match=said):
        Settings(training=training)


def small_table(n: int, seed: int = 3) -> pd.DataFrame:
    """A few hundred rows whose label two of eight columns explain: the size of many a public table."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8))
    logit = -1.0 + 1.6 * x[:, 0] - 1.2 * x[:, 1]
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(8)])
    frame["won"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def test_a_table_of_a_few_hundred_rows_is_learnt_where_a_fixed_leaf_of_100_rows_could_not(tmp_path):
    """modeldata's ad_data (333 rows) scored AUC 0.50 with 100 rows a leaf: no split left two leaves of 100."""
    path = tmp_path / "small.csv"
    small_table(330).to_csv(path, index=False)
    auto = Settings()
    fixed = Settings(training={"lgbm_params": {**auto.training.lgbm_params, "min_data_in_leaf": 100}})
    scaled = evaluate_table(path, "won", auto, folds=5).scorers["leadradar"]
    hundred = evaluate_table(path, "won", fixed, folds=5).scorers["leadradar"]
    assert scaled["auc"] > 0.75 and hundred["auc"] < 0.6, (scaled["auc"], hundred["auc"])
    assert scaled["logloss"] < hundred["logloss"]


def fitted_on_leads(rows: int) -> tuple[FunnelModel, pd.DataFrame]:
    """A model fitted on three rows a lead (as weekly cutoffs give them), the leaf minimum the rows of 5 leads."""
    frame = small_table(rows).assign(lead=np.arange(rows) // 3)
    cut = rows * 2 // 3
    model = FunnelModel(
        [TargetSpec("won", "won")],
        [f"x{i}" for i in range(8)],
        params={"objective": "binary", "verbosity": -1, "min_data_in_leaf": "auto"},
        num_boost_round=20,
        leaf_rule=LeafRule(5, 40),
        isotonic_min_rarer=12,
    ).fit(frame.iloc[:cut], frame.iloc[cut:], group="lead")
    return model, frame


def test_a_saved_model_keeps_its_rule_and_records_the_leaf_minimum_it_used(tmp_path):
    model, _ = fitted_on_leads(600)
    fitted = model.targets_["won"]
    assert fitted.min_data_in_leaf == 15  # the rows of 5 leads
    assert fitted.booster.params["min_data_in_leaf"] == 15, "LightGBM was not given the leaf minimum"
    again = FunnelModel.load(model.save(tmp_path / "bundle"))
    assert again.leaf_rule == LeafRule(5, 40) and again.targets_["won"].min_data_in_leaf == 15
    assert again.isotonic_min_rarer == 12  # what a refit of it chooses its calibrators by
    assert again.targets_["won"].booster.params["min_data_in_leaf"] == 15


def test_cross_fitted_and_refit_boosters_keep_the_backtest_leaf_minimum():
    """The refit's calibrator learns from boosters fitted on earlier cutoffs (fewer rows a lead): they must be the
    booster it will calibrate, as their rounds are, or it corrects for confidence the served booster lacks."""
    model, frame = fitted_on_leads(900)
    fitted = model.targets_["won"]
    assert fitted.min_data_in_leaf == 15
    one_row_a_lead = frame.iloc[::3]  # by its own rows, 5 rows a leaf
    assert model.raw_booster(fitted, one_row_a_lead).params["min_data_in_leaf"] == 15
    refit = model.refit_target(fitted.spec, frame, fitted.best_iteration, fitted.calibrator, {}, leaf=15)
    assert refit.min_data_in_leaf == 15 and refit.booster.params["min_data_in_leaf"] == 15
