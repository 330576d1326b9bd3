"""The training set as `features build` writes it on DuckDB: one file, labels whose window is still open missing."""

from __future__ import annotations

import pandas as pd

from leadradar.config import Settings
from leadradar.features.engines import read_parquet
from leadradar.features.radar_log import RadarLog
from leadradar.features.simulator import SimulationConfig, simulate
from leadradar.features.trainset import write_training_set
from leadradar.targets import Targets, close_label

SETTINGS = Settings()


def test_a_close_label_whose_window_is_still_open_is_missing_not_a_negative(tmp_path):
    simulate(SimulationConfig(tenants=1, leads=150, days=120, seed=5), SETTINGS).write(tmp_path)
    until = pd.Timestamp("2026-05-05", tz="UTC")
    written = write_training_set(RadarLog.from_dir(tmp_path), SETTINGS, tmp_path / "set.parquet", until, "duckdb")
    frame = read_parquet(written.path)
    assert written.path.is_file() and not written.parts and written.rows == len(frame) > 0
    targets = Targets.from_settings(SETTINGS)
    assert (frame[targets.label_columns].dtypes == "float64").all()
    assert frame[targets.advance_label].notna().all()
    for h in targets.horizons_days:
        still_open = frame["cutoff"] + pd.Timedelta(days=h) > until
        assert frame.loc[still_open, close_label(h)].isna().all()
        assert frame.loc[~still_open, close_label(h)].notna().all()
    assert still_open.any() and not still_open.all(), "the longest horizon should be open for some cutoffs only"
