"""Spark computes the same day tiles as DuckDB from the same Ibis expressions (issue 17, item 6)."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from leadradar.config import Settings
from leadradar.features.engines import connect, feature_input, load
from leadradar.features.tiles.partials import day_tiles
from tests.features.test_events_folder import daily, exported
from tests.support.strategies import CUTOFF, events_table

SETTINGS = Settings()
TOD = (CUTOFF.value // 1000) % 86_400_000_000
pytestmark = pytest.mark.spark


def small_log() -> pa.Table:
    """Three leads over three weeks: sessions split by gaps, a repeated event, items, a referral, a later day, and a
    view with no dwell (a null float once reached Spark as NaN through Ibis's pandas route; `engines.load` gives
    Spark the Arrow table itself)."""
    base = {"tenant_id": "ta", "sales_id": "s1", "micro": 0, "dwell_s": 4.0, "item_id": None}
    base |= {"referrer_lead_id": None, "channel": "h5", "event_type": "card_view"}
    rows = []
    for d in range(0, 21, 2):
        for lead, minutes in (("L1", (0, 10, 55)), ("L2", (0, 31)), ("L3", (5,))):
            for m in minutes:
                rows.append({**base, "lead_id": lead, "offset_s": -d * 86400 - m * 60 - 7})
    rows.append({**base, "lead_id": "L2", "event_type": "product_view", "item_id": "ta-p1-01", "offset_s": -3 * 3600})
    rows.append({**base, "lead_id": "L3", "referrer_lead_id": "L1", "dwell_s": 0.0, "offset_s": -86400 * 4})
    rows.append({**base, "lead_id": "L1", "event_type": "phone_call", "dwell_s": 0.0, "offset_s": 3600})
    rows.append({**base, "lead_id": "L2", "dwell_s": None, "offset_s": -86400 * 6 - 600})
    events = events_table(rows)
    return pa.concat_tables([events, events.slice(3, 2)])  # two sent twice


def _tiles(con, events: pa.Table) -> pd.DataFrame:
    table = day_tiles(feature_input(load(con, events, "events"), "events"), TOD, SETTINGS).to_pyarrow()
    keys = ["tenant_id", "lead_id", "bucket", "tcode"]
    frame = table.to_pandas().sort_values(keys).reset_index(drop=True)
    return frame.astype({c: "float64" for c in frame.columns if c not in ("tenant_id", "lead_id")})


def test_spark_computes_the_same_day_tiles_as_duckdb():
    events = small_log()
    spark = connect("spark", SETTINGS.features)
    pd.testing.assert_frame_equal(_tiles(spark, events), _tiles(connect("duckdb", SETTINGS.features), events))


def test_spark_reads_the_files_duckdb_reads(tmp_path):
    """A folder of events files (tests/features/test_events_folder.py): here, where a Spark session runs already."""
    folder = exported(tmp_path / "events", [12, 11])
    (tmp_path / "events" / "late").mkdir()
    pq.write_table(daily(10).drop_columns(["channel"]), tmp_path / "events" / "late" / "late.parquet")
    (tmp_path / "events" / "_late.parquet").write_bytes(b"being written")
    duck = load(connect("duckdb"), folder, "events").to_pyarrow().to_pandas()
    spark = load(connect("spark", SETTINGS.features), folder, "events").to_pyarrow().to_pandas()
    order = ["event_id"]
    pd.testing.assert_frame_equal(
        spark.sort_values(order).reset_index(drop=True), duck.sort_values(order).reset_index(drop=True)
    )
    assert len(duck) == 12 and duck["channel"].isna().sum() == 4
