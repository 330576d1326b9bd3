"""The radar log as one value: which files a folder gives it, what counts as truth, and what a file may lack."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from leadradar.config import Settings
from leadradar.errors import InputError, UserError
from leadradar.features.engines import connect, load
from leadradar.features.radar_log import FILES, RadarLog
from leadradar.features.simulator import SimulationConfig, simulate

PARTS = ("events", "stages", "items", "leads", "truth")


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("radar-log")
    simulate(SimulationConfig(tenants=1, leads=300, days=60, seed=5), Settings()).write(out)
    return out


def copy_of(sim_dir: Path, folder: Path, *parts: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for part in parts:
        shutil.copy(sim_dir / FILES[part], folder / FILES[part])
    return folder


def test_from_dir_finds_every_part_the_simulator_writes(sim_dir: Path) -> None:
    log = RadarLog.from_dir(sim_dir)
    assert {part: getattr(log, part) for part in PARTS} == {part: sim_dir / FILES[part] for part in PARTS}


def test_from_dir_leaves_out_optional_parts_the_folder_lacks(sim_dir: Path, tmp_path: Path) -> None:
    log = RadarLog.from_dir(copy_of(sim_dir, tmp_path / "bare", "events", "stages"))
    assert (log.items, log.leads, log.truth) == (None, None, None)
    assert set(log.paths()) == {"events", "stages"}


def test_from_dir_without_stages_names_the_folder_and_the_missing_file(sim_dir: Path, tmp_path: Path) -> None:
    folder = copy_of(sim_dir, tmp_path / "no-stages", "events", "items")
    with pytest.raises(InputError, match=r"stages\.parquet") as err:
        RadarLog.from_dir(folder)
    assert str(folder) in str(err.value)


def test_from_dir_of_a_folder_that_does_not_exist_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such folder"):
        RadarLog.from_dir(tmp_path / "nowhere")


def test_from_paths_takes_the_optional_parts_from_beside_the_events(sim_dir: Path, tmp_path: Path) -> None:
    stages = copy_of(sim_dir, tmp_path / "elsewhere", "stages") / FILES["stages"]
    log = RadarLog.from_paths(sim_dir / FILES["events"], stages)
    assert (log.stages, log.items, log.leads, log.truth) == (
        stages,
        sim_dir / FILES["items"],
        sim_dir / FILES["leads"],
        sim_dir / FILES["truth"],
    )


def test_from_paths_looks_beside_the_events_only_for_the_parts_asked_for(sim_dir: Path) -> None:
    log = RadarLog.from_paths(sim_dir / FILES["events"], sim_dir / FILES["stages"], beside=("items",))
    assert log.items == sim_dir / FILES["items"]
    assert (log.leads, log.truth) == (None, None)


def test_a_named_file_that_does_not_exist_is_an_input_error_naming_it(sim_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "itmes.parquet"
    with pytest.raises(InputError, match="no such items file") as err:
        RadarLog.from_paths(sim_dir / FILES["events"], sim_dir / FILES["stages"], items=missing)
    assert str(missing) in str(err.value)


def test_paths_are_absolute_and_leave_out_tables_in_memory(sim_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(sim_dir)
    log = RadarLog(FILES["events"], FILES["stages"], items=pq.read_table(FILES["items"]))
    assert log.paths() == {"events": sim_dir / FILES["events"], "stages": sim_dir / FILES["stages"]}


def test_a_foreign_truth_file_is_ignored_with_one_warning(
    sim_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = copy_of(sim_dir, tmp_path / "foreign", "events", "stages")
    pq.write_table(pa.table({"lead": ["a"], "score": [0.3]}), folder / FILES["truth"])
    with caplog.at_level(logging.WARNING):
        log = RadarLog.from_dir(folder)
    assert log.truth is None and "truth" not in log.paths()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(folder / FILES["truth"]) in warnings[0]
    assert "\n" not in warnings[0]


def test_a_truth_file_that_is_not_parquet_is_ignored_not_a_crash(sim_dir: Path, tmp_path: Path) -> None:
    folder = copy_of(sim_dir, tmp_path / "garbled", "events", "stages")
    (folder / FILES["truth"]).write_text("lead,score\na,0.3\n")
    assert RadarLog.from_dir(folder).truth is None


def test_truth_of_gives_the_simulators_probability_per_lead_and_cutoff(sim_dir: Path) -> None:
    truth = RadarLog.from_dir(sim_dir).truth_of("p_close_30d")
    assert truth is not None
    assert list(truth.columns) == ["tenant_id", "lead_id", "cutoff", "p_close_30d"]
    assert str(truth["cutoff"].dtype) == "datetime64[us, UTC]"
    assert truth["p_close_30d"].between(0, 1).all()


def test_truth_of_a_horizon_the_simulator_did_not_write_is_none(sim_dir: Path) -> None:
    assert RadarLog.from_dir(sim_dir).truth_of("p_close_45d") is None


def test_a_truth_table_in_memory_is_checked_like_a_file(sim_dir: Path) -> None:
    simulator_truth = pq.read_table(sim_dir / FILES["truth"])
    assert RadarLog(sim_dir / FILES["events"], sim_dir / FILES["stages"], truth=simulator_truth).truth is not None
    foreign = pd.DataFrame({"tenant_id": ["t"], "lead_id": ["l"], "p": [0.1]})
    assert RadarLog(sim_dir / FILES["events"], sim_dir / FILES["stages"], truth=foreign).truth is None


# --- what a part's file may lack: its optional contract columns, never a required one ---


def test_stages_without_deal_value_load_with_it_missing(sim_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "stages.parquet"
    pq.write_table(pq.read_table(sim_dir / FILES["stages"]).drop(["deal_value"]), path)
    stages = load(connect(), path, "stages").to_pyarrow()
    assert stages.num_rows > 0 and stages["deal_value"].null_count == stages.num_rows


def test_events_without_their_optional_columns_load_with_them_missing(sim_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    optional = ["dwell_s", "item_id", "referrer_lead_id", "channel"]
    pq.write_table(pq.read_table(sim_dir / FILES["events"]).drop(optional), path)
    events = load(connect(), path, "events").to_pyarrow()
    assert events.num_rows > 0 and all(events[c].null_count == events.num_rows for c in optional)


def test_stages_in_memory_without_deal_value_load_with_it_missing(sim_dir: Path) -> None:
    table = pq.read_table(sim_dir / FILES["stages"]).drop(["deal_value"])
    assert load(connect(), table, "stages").to_pyarrow()["deal_value"].null_count == table.num_rows


@pytest.mark.parametrize(
    ("change", "column", "words"),
    [
        (lambda t: t.drop(["stage"]), "stage", "lacks the required column"),
        (lambda t: t.set_column(3, "ts", t["ts"].cast(pa.timestamp("us"))), "ts", "without a time zone"),
        (lambda t: t.set_column(3, "ts", t["ts"].cast(pa.string())), "ts", "has type string"),
        (lambda t: t.set_column(4, "deal_value", t["deal_value"].cast(pa.string())), "deal_value", "expected numbers"),
    ],
    ids=["required column missing", "naive timestamps", "timestamps as text", "number as text"],
)
def test_a_stages_file_that_misses_the_contract_is_one_error_naming_file_and_column(
    sim_dir: Path, tmp_path: Path, change, column: str, words: str
) -> None:
    path = tmp_path / "stages.parquet"
    pq.write_table(change(pq.read_table(sim_dir / FILES["stages"])), path)
    with pytest.raises(InputError) as err:
        load(connect(), path, "stages")
    message = str(err.value)
    assert message.startswith(str(path)) and column in message and words in message and "\n" not in message


def test_a_file_that_is_not_parquet_is_an_input_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    path.write_text("event_id,tenant_id\n")
    with pytest.raises(InputError, match="cannot be read as Parquet") as err:
        load(connect(), path, "events")
    assert str(path) in str(err.value)
