"""A simulated world whose behaviour shifts halfway: drift is detected on the shifted features, a retrain is
triggered, and the new champion's log loss on the shifted period is lower than the old one's."""

from __future__ import annotations

import pandas as pd
import pytest

from leadradar.config import LifecycleConfig, Settings
from leadradar.features.radar_log import RadarLog
from leadradar.features.simulator import SimulationConfig, simulate
from leadradar.ledger import Ledger
from leadradar.lifecycle import drift_check
from leadradar.training.retrain import retrain

SHIFT_DAY, DAYS = 150, 300


@pytest.mark.slow
def test_shift_halfway_is_detected_and_the_retrained_champion_fits_the_shifted_period_better(tmp_path) -> None:
    settings = Settings(
        home=tmp_path / "home",
        lifecycle=LifecycleConfig(drift_days=28),
        training={"horizons_days": (30,), "transition_models": False},  # the close model alone: drift, not targets
    )
    cfg = SimulationConfig(tenants=1, leads=5000, days=DAYS, seed=11, shift_day=SHIFT_DAY)
    paths = simulate(cfg, settings).write(tmp_path / "sim")
    log = RadarLog.from_paths(paths["events"], paths["stages"], beside=("items", "leads"))
    start = pd.Timestamp(cfg.start, tz="UTC")
    shift, end = start + pd.Timedelta(days=SHIFT_DAY), start + pd.Timedelta(days=DAYS)

    first = retrain(settings, now=shift, trigger="test", log=log)
    assert first.outcome == "promoted", first.summary

    result = drift_check(settings, now=end, log=log)
    table = pd.DataFrame(result.detail["table"])
    drifted = set(table.loc[table["drifted"], "column"])
    assert any(column.startswith("pricing_views") for column in drifted), drifted
    assert result.outcome == "drift" and result.detail["retrain"]["trigger"].startswith("drift")
    assert len(result.detail["notices"]) == 1  # the managers' notice, stored in the alert outbox

    verdict = result.detail["retrain"]["verdict"]
    assert verdict["holdout"]["from"] >= shift.isoformat()[:10]
    assert verdict["challenger_metrics"]["logloss"] < verdict["champion_metrics"]["logloss"]
    assert result.detail["retrain"]["outcome"] == "promoted"
    (last, *_) = Ledger(settings.lifecycle_url).runs("retrain")
    assert last.outcome == "promoted" and last.detail["verdict"]["champion_metrics"]
