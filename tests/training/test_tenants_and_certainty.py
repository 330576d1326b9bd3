"""The served model across tenants: a new tenant is served the pooled probability, flagged; each score has an
ordered interval; the run holds leave-one-tenant-out figures."""

from __future__ import annotations

import numpy as np
import pytest

from leadradar.config import Settings
from leadradar.features.radar_log import RadarLog
from leadradar.features.simulator import SimulationConfig, simulate
from leadradar.features.trainset import build_training_set
from leadradar.registry import ModelRef, load_version
from leadradar.training import pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Settings, RadarLog, pipeline.TrainResult]:
    out = tmp_path_factory.mktemp("tenants")
    simulate(SimulationConfig(tenants=3, leads=4000, days=270, seed=5), Settings()).write(out)
    home = tmp_path_factory.mktemp("tenants-home")
    settings = Settings(
        home=home,
        mlflow={"model_name": "tenants"},
        training={
            "horizons_days": (7, 30),
            "transition_models": False,
            "bootstrap_resamples": 20,
            "tenant_min_rows": 500,
            "tenant_min_positives": 20,
            "interval_bags": 4,
        },
    )
    log = RadarLog.from_dir(out)
    return settings, log, pipeline.train_from_logs(log, settings, use_tuned=False)


def test_a_new_tenant_gets_pooled_scores_flagged_as_such_and_known_ones_their_own(run) -> None:
    settings, log, result = run
    model = load_version(settings, ModelRef(result.model_name, result.model_version, result.run_id))
    ts = build_training_set(log, settings)
    rows = ts.frame[ts.frame["cutoff"] == ts.frame["cutoff"].max()].head(300)
    known = model.certainty(rows)
    new = model.certainty(rows.assign(tenant_id="a-company-never-seen"))
    assert not known["pooled"].any()
    assert new["pooled"].all()
    pooled_p = model.targets_[model.main_target].predict(model.matrix(rows))
    np.testing.assert_allclose(new["p"].to_numpy(), pooled_p)
    assert not np.allclose(known["p"].to_numpy(), pooled_p)


def test_every_score_has_an_interval_that_holds_it(run) -> None:
    settings, log, result = run
    model = load_version(settings, ModelRef(result.model_name, result.model_version, result.run_id))
    ts = build_training_set(log, settings)
    sure = model.certainty(ts.frame.tail(500))
    assert sure[["p_lo", "p_hi"]].notna().all().all()
    assert (sure["p_lo"] <= sure["p"]).all() and (sure["p"] <= sure["p_hi"]).all()
    assert (sure["p_hi"] - sure["p_lo"]).mean() > 0


def test_the_run_holds_leave_one_tenant_out_figures_beside_the_model_that_saw_the_tenant(run) -> None:
    _, _, result = run
    figures = result.extra["tenants"]
    assert figures["loto_tenants"] >= 2
    assert np.isfinite(figures["loto_mean_logloss"]) and np.isfinite(figures["loto_mean_logloss_seen"])
    assert {"pooled_logloss", "tenant_calibrated_logloss"} <= set(figures)
