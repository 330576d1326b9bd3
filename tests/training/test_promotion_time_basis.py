"""A run trained from the event store records whether it read the log as seen or by event time, and promotion
rebuilds the challenger's holdout the same way (a late event counts from its arrival only as seen)."""

from __future__ import annotations

import pandas as pd
import pytest

from leadradar.config import Settings
from leadradar.features.radar_log import RadarLog
from leadradar.features.simulator import SimulationConfig, simulate
from leadradar.features.store import EventStore
from leadradar.features.store.loading import load_files
from leadradar.features.trainset import build_training_set
from leadradar.targets import Targets
from leadradar.training.pipeline import sources_tags
from leadradar.training.promotion import holdout_for

pytestmark = pytest.mark.slow


def labelled(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    keys = ["tenant_id", "lead_id", "cutoff"]
    return frame[frame[label].notna()].sort_values(keys).reset_index(drop=True)


def test_promotion_rebuilds_an_event_time_run_by_event_time_and_an_as_seen_run_as_seen(tmp_path):
    sim = tmp_path / "sim"
    simulate(SimulationConfig(tenants=2, leads=1500, days=200, seed=5), Settings()).write(sim)
    settings = Settings(home=tmp_path / "home")
    store = EventStore.open(settings)
    end = pd.read_parquet(sim / "events.parquet", columns=["ts"])["ts"].max() + pd.Timedelta(days=7)
    files = {"items": sim / "items.parquet", "leads": sim / "leads.parquet"}
    load_files(store, settings, [sim / "events.parquet"], stages=[sim / "stages.parquet"], **files, now=end)
    logs = {basis: RadarLog.from_store(store, as_seen=basis) for basis in (True, False)}
    store.close()
    assert sources_tags(logs[True])["data.time"] == "as seen"
    assert sources_tags(logs[False])["data.time"] == "event time"
    assert "data.time" not in sources_tags(RadarLog.from_dir(sim))

    label = Targets.from_settings(settings).main_label
    cutoffs = build_training_set(logs[True], settings).frame["cutoff"]
    until = cutoffs.max() + pd.Timedelta(days=settings.training.horizon_days)
    window = (cutoffs.max() - pd.Timedelta(days=28), cutoffs.max())
    expected = {
        basis: labelled(build_training_set(log, settings, until=until, cutoff_range=window).frame, label)
        for basis, log in logs.items()
    }
    for basis, log in logs.items():
        tags = {**sources_tags(log), "window.data_until": str(until)}
        tags |= {"split.test_from": str(window[0]), "split.test_to": str(window[1])}
        frame, got_label = holdout_for(settings, tags, {})
        assert got_label == label
        pd.testing.assert_frame_equal(labelled(frame, label), expected[basis])
    assert not expected[True].equals(expected[False])  # the late arrivals move features: the two can be told apart
