"""A folder of Parquet events files (a nightly export's daily files) read as one events table: the same features as
one file of its rows on every engine, a night fingerprints only the files written since, and a bad file in the folder
is one line naming it."""

from __future__ import annotations

import re
from itertools import pairwise

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from leadradar.config import Settings
from leadradar.errors import InputError
from leadradar.features import build as feature_build
from leadradar.features.build import compute_features
from leadradar.features.engines import connect, load
from leadradar.features.radar_log import RadarLog
from leadradar.features.registry import build_registry
from leadradar.features.tiles import groups as tile_groups
from leadradar.features.tiles.fingerprints import day_fingerprints
from tests.cli.test_cli_errors import assert_one_line_error, cli
from tests.support.parity import assert_same_features
from tests.support.strategies import CUTOFF, before, event_rows, events_table, stages_table

SETTINGS = Settings()
REGISTRY = build_registry(SETTINGS)
CUTOFFS = [CUTOFF - pd.Timedelta(days=8), CUTOFF - pd.Timedelta(days=1), CUTOFF]
TOD = int(CUTOFF.value // 1000) % 86_400_000_000
BASE = {"tenant_id": "ta", "sales_id": "s1", "micro": 0, "item_id": None, "referrer_lead_id": None, "channel": "h5"}
STAGES = stages_table([{"tenant_id": "ta", "lead_id": "L1", "stage": "engaged", "offset_s": -9 * 86400}])


def daily(day: int, leads: int = 3) -> pa.Table:
    """A day's events (`day` days before the cutoff), a few per lead."""
    rows = [
        {**BASE, "lead_id": f"L{i % leads}", "event_type": ("card_view", "product_view")[i % 2], "dwell_s": 2.0 + i}
        for i in range(4)
    ]
    return events_table([{**r, "offset_s": -day * 86400 + 600 * i} for i, r in enumerate(rows)], f"d{day}-")


def name(day: int) -> str:
    """A day's file, named by its date (`day` days before the cutoff)."""
    return f"{(CUTOFF - pd.Timedelta(days=day)).date()}.parquet"


def exported(folder, days: list[int]) -> str:
    """A nightly export's folder: a file per day, Spark's marker files beside them."""
    folder.mkdir(exist_ok=True)
    for day in days:
        pq.write_table(daily(day), folder / name(day))
    (folder / "_SUCCESS").touch()
    (folder / f".{name(12)}.crc").write_bytes(b"\0")
    return str(folder)


@pytest.fixture
def fresh(monkeypatch) -> list[list[int]]:
    """The parts each fingerprinting found new (the real computation, recorded)."""
    calls: list[list[int]] = []
    real = tile_groups._fresh

    def recorded(keys, kept):
        calls.append(real(keys, kept))
        return calls[-1]

    monkeypatch.setattr(tile_groups, "_fresh", recorded)
    return calls


@hsettings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    phases=[Phase.generate],
)
@pytest.mark.slow  # about 7 s on 2 cores: left out of `make test-fast`
@given(rows=st.lists(event_rows(before), min_size=1, max_size=40), cuts=st.lists(st.integers(0, 40), max_size=3))
def test_a_folder_builds_what_one_file_of_its_rows_builds(tmp_path_factory, rows, cuts):
    """Split anywhere, in nested folders, one file without the optional `channel` column and one with a column of its
    own: the DuckDB and tiles builds (tiles kept) equal the one-file build, and Spark's hidden files are left out."""
    root = tmp_path_factory.mktemp("folder")
    table = events_table(rows, "h")
    pq.write_table(table, root / "one.parquet")
    folder = root / "events"
    (folder / "2026" / "03").mkdir(parents=True)
    bounds = sorted({0, table.num_rows // 2, *(min(c, table.num_rows) for c in cuts), table.num_rows})
    for k, (lo, hi) in enumerate(pairwise(bounds)):
        part = table.slice(lo, hi - lo)
        if k == 0:
            part = part.drop_columns(["channel"])
        if k == 1:  # another writer: a column of its own, categories for text, times in Shanghai
            part = part.append_column("exporter", pa.array(["x"] * part.num_rows))
            part = part.set_column(5, "event_type", pc.dictionary_encode(part["event_type"]))
            part = part.set_column(4, "ts", part["ts"].cast(pa.timestamp("us", tz="Asia/Shanghai")))
        pq.write_table(part, folder / ("2026/03" if k % 2 else "") / f"part-{k}.parquet")
    (folder / "_SUCCESS").touch()
    (folder / "_tmp.parquet").write_bytes(b"not yet written")
    (folder / ".part-0.parquet.crc").write_bytes(b"\0")
    want = compute_features(str(root / "one.parquet"), STAGES, CUTOFFS, SETTINGS, REGISTRY)
    assert_same_features(compute_features(str(folder), STAGES, CUTOFFS, SETTINGS, REGISTRY), want, REGISTRY)
    kept = Settings(features={"tiles_dir": str(root / "tiles")})
    for _ in range(2):  # computed, then from what was kept
        got = compute_features(str(folder), STAGES, CUTOFFS, kept, REGISTRY, engine="tiles")
        assert_same_features(got, want, REGISTRY)


@pytest.mark.slow  # about 4 s on 2 cores: left out of `make test-fast`
def test_a_night_fingerprints_only_the_files_written_since_and_a_rewritten_file_again(tmp_path, fresh):
    folder = tmp_path / "events"
    kept = Settings(features={"tiles_dir": str(tmp_path / "tiles")})

    def night() -> pd.DataFrame:
        got = compute_features(str(folder), STAGES, CUTOFFS, kept, REGISTRY, engine="tiles")
        want = compute_features(str(folder), STAGES, CUTOFFS, SETTINGS, REGISTRY)
        assert_same_features(got, want, REGISTRY)
        return got

    exported(folder, [12, 11, 10, 9])
    night()
    assert fresh == [[0, 1, 2, 3]]
    pq.write_table(daily(8).drop_columns(["channel"]), folder / name(8))  # one more day, exported without channels
    fresh.clear()
    night()
    assert fresh == [[4]]
    corrected = daily(10).set_column(6, "dwell_s", pa.array([9.0, 9.0, 9.0, 9.0]))  # a day's file written again
    pq.write_table(corrected, folder / name(10))
    fresh.clear()
    night()
    assert fresh == [[2]]
    (folder / name(9)).unlink()  # a day taken out: no file to scan, its days' tiles change
    fresh.clear()
    assert len(night()) > 0
    assert fresh == [[]]


def test_the_folders_fingerprints_equal_a_scan_of_every_event(tmp_path):
    folder = exported(tmp_path / "events", [12, 10, 3, 1])
    source = feature_build.events_source(folder, SETTINGS)
    assert isinstance(source, tile_groups.EventsFolder)
    days, parts = source.day_fingerprints(connect("tiles"), TOD, {})
    con = connect("tiles")
    ev, *_ = feature_build._bound(con, folder, STAGES, CUTOFFS, SETTINGS)
    assert days == day_fingerprints(ev, TOD)
    assert len(parts) == 4


@pytest.mark.parametrize(
    ("spoil", "says"),
    [
        (lambda: daily(5).drop_columns(["lead_id"]), "lacks the required column lead_id"),
        (lambda: daily(5).set_column(4, "ts", pa.array(["2026-03-01"] * 4)), "column ts"),
        (None, "cannot be read as Parquet"),
    ],
    ids=["a required column missing", "text where times belong", "not Parquet"],
)
def test_a_bad_file_in_the_folder_is_one_error_naming_it(tmp_path, spoil, says):
    folder = exported(tmp_path / "events", [12, 11])
    bad = tmp_path / "events" / name(5)
    if spoil is None:
        bad.write_bytes(b"PAR1 then nothing a reader can use")
    else:
        pq.write_table(spoil(), bad)
    with pytest.raises(InputError, match=f"^{re.escape(str(bad))}: .*{says}"):
        RadarLog(folder, STAGES)


def test_a_folder_without_parquet_files_is_one_error(tmp_path):
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "_SUCCESS").touch()
    with pytest.raises(InputError, match=r"events: no Parquet files \(\*\.parquet\) in this folder"):
        RadarLog(tmp_path / "events", STAGES)


@pytest.mark.slow  # about 4 s on 2 cores: left out of `make test-fast`
def test_the_command_names_the_bad_file_of_a_folder_in_one_line(tmp_path):
    """As a person runs it: a file missing a column, then a file whose footer reads but whose page is overwritten
    (it fails deep in the engine); the training set from before stays as it was."""
    folder = exported(tmp_path / "events", list(range(90, 0, -5)))  # long enough for a cutoff and its horizon
    stages = [{"tenant_id": "ta", "lead_id": f"L{i}", "stage": "engaged", "offset_s": -88 * 86400} for i in range(3)]
    pq.write_table(stages_table(stages), tmp_path / "stages.parquet")
    out = tmp_path / "set.parquet"
    pq.write_table(pa.table({"yesterday": [1, 2, 3]}), out)
    before = out.read_bytes()
    args = ["features", "build", "--events", folder, "--stages", tmp_path / "stages.parquet", "--out", out]
    missing = tmp_path / "events" / name(3)
    pq.write_table(daily(3).drop_columns(["sales_id"]), missing)
    assert_one_line_error(cli(*args, home=tmp_path / "home"), missing, "lacks the required column sales_id")
    missing.unlink()
    damaged = tmp_path / "events" / name(45)
    data = bytearray(damaged.read_bytes())
    meta = pq.ParquetFile(damaged)
    at = meta.metadata.row_group(0).column(meta.schema_arrow.names.index("sales_id")).data_page_offset
    data[at : at + 16] = bytes(b ^ 0xFF for b in data[at : at + 16])  # the page's header
    damaged.write_bytes(bytes(data))
    line = assert_one_line_error(cli(*args, home=tmp_path / "home"), damaged, "rows 1–4", "column sales_id")
    assert "restore it" in line
    assert out.read_bytes() == before


def test_readers_outside_the_engines_read_the_folder_as_one_table(tmp_path):
    """The log's data key (what tuning and promotion compare) is the one file's, and a file's narrower columns (no
    `channel`, whole-number dwell times) read as the others'."""
    from leadradar.features.radar_log import read_parquet_part
    from leadradar.training.fingerprint import log_key

    whole = pa.concat_tables([daily(3), daily(2), daily(1)])
    pq.write_table(whole, tmp_path / "events.parquet")
    folder = exported(tmp_path / "events", [3, 2, 1])
    (tmp_path / "events" / "README.txt").write_text("exported nightly by the CRM")
    window = {"from": "a", "to": "b"}
    assert log_key(RadarLog(folder, STAGES), window) == log_key(RadarLog(tmp_path / "events.parquet", STAGES), window)
    narrow = daily(3).drop_columns(["channel"]).set_column(6, "dwell_s", pa.array([1, 2, 3, 4], pa.int64()))
    pq.write_table(narrow, tmp_path / "events" / name(3))  # the first file
    table = read_parquet_part(tmp_path / "events")
    assert table.num_rows == 12 and table.schema.field("dwell_s").type == pa.float64()
    assert table["channel"].null_count == 4
    assert sum(table["dwell_s"].to_pylist()) == 2 * (2 + 3 + 4 + 5) + (1 + 2 + 3 + 4)


def test_a_log_folder_may_hold_its_events_as_spark_writes_them(tmp_path):
    """`events.parquet` a folder of parts (Spark's `write.parquet`), the stages a file: `RadarLog.from_dir` takes it."""
    exported(tmp_path / "events.parquet", [3, 2, 1])
    pq.write_table(STAGES, tmp_path / "stages.parquet")
    log = RadarLog.from_dir(tmp_path)
    assert log.events == tmp_path / "events.parquet" and log.stages == tmp_path / "stages.parquet"
    assert load(connect("duckdb"), log.events, "events").count().to_pyarrow().as_py() == 12
