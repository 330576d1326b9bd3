"""A user's mistake on the command line is one line on stderr that names the file, column or value, and exit code 2.

Most cases run the real command (`python -m leadradar.cli ...`) in a subprocess, so what is checked is
what a person sees; a traceback appears only with `--debug` or LEADRADAR_DEBUG=1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from leadradar.cli import OneLineErrors
from leadradar.config import QUIET_ENVIRONMENT
from leadradar.errors import BadValueError
from tests.support.small_disk import grow, small_disk

SIM = ["--tenants", "1", "--leads", "2000", "--days", "200", "--seed", "1"]


def cli(*args: str | Path, home: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`leadradar ARGS` as a person runs it, in its own process, with its own data directory."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LEADRADAR_")}
    environ |= QUIET_ENVIRONMENT | {"LEADRADAR_HOME": str(home), "COLUMNS": "80"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "leadradar.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=600,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *names: str | Path) -> str:
    """Exit code 2, no traceback, and exactly one line on stderr that names each of `names`."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-errors-home")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory, home: Path) -> Path:
    """A small simulated log, made by `leadradar simulate` itself."""
    out = tmp_path_factory.mktemp("cli-errors-sim")
    result = cli("simulate", "--out", out, *SIM, home=home)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def broken(sim: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Stage files that miss the contract in one way each, and a file that is not Parquet."""
    out = tmp_path_factory.mktemp("cli-errors-broken")
    stages = pq.read_table(sim / "stages.parquet")
    files = {
        "no_stage": stages.drop(["stage"]),
        "naive_ts": stages.set_column(3, "ts", stages["ts"].cast(pa.timestamp("us"))),
        "text_deal_value": stages.set_column(4, "deal_value", stages["deal_value"].cast(pa.string())),
    }
    paths = {}
    for name, table in files.items():
        paths[name] = out / f"{name}.parquet"
        pq.write_table(table, paths[name])
    paths["not_parquet"] = out / "events.parquet"
    paths["not_parquet"].write_text("event_id,tenant_id,lead_id\n1,t,l\n")
    return paths


def logs(sim: Path, stages: Path | None = None) -> list[str | Path]:
    return ["--events", sim / "events.parquet", "--stages", stages or sim / "stages.parquet"]


# --- missing, unreadable and mistyped files ---


def test_a_missing_events_file_is_one_line_naming_it(sim: Path, home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "evnets.parquet"
    result = cli("train", "--events", missing, "--stages", sim / "stages.parquet", home=home)
    assert_one_line_error(result, missing, "no such events file")


def test_an_events_file_that_is_not_parquet_is_one_line_naming_it(sim: Path, home: Path, broken) -> None:
    result = cli("train", "--events", broken["not_parquet"], "--stages", sim / "stages.parquet", home=home)
    assert_one_line_error(result, broken["not_parquet"], "Parquet")


def test_a_stages_file_without_a_required_column_is_one_line_naming_file_and_column(
    sim: Path, home: Path, broken
) -> None:
    result = cli("train", *logs(sim, broken["no_stage"]), home=home)
    assert_one_line_error(result, broken["no_stage"], "required column stage")


def test_naive_stage_timestamps_are_refused_in_one_line_not_guessed(sim: Path, home: Path, broken) -> None:
    result = cli("train", *logs(sim, broken["naive_ts"]), home=home)
    assert_one_line_error(result, broken["naive_ts"], "column ts", "time zone")


def test_a_mistyped_deal_value_column_is_one_line_naming_it(sim: Path, home: Path, broken, tmp_path: Path) -> None:
    result = cli("features", "build", *logs(sim, broken["text_deal_value"]), "--out", tmp_path / "f.parquet", home=home)
    assert_one_line_error(result, broken["text_deal_value"], "deal_value", "string")


def test_an_events_csv_that_is_empty_is_one_line_naming_it(home: Path, tmp_path: Path) -> None:
    empty = tmp_path / "events.csv"
    empty.write_text("")
    result = cli("ingest", empty, "--out", tmp_path / "store", home=home)
    assert_one_line_error(result, empty, "empty file")


@pytest.mark.slow  # about 4 s on 2 cores: left out of `make test-fast`
def test_a_feature_table_without_its_label_column_is_one_line_naming_the_column(home: Path, tmp_path: Path) -> None:
    table = tmp_path / "table.csv"
    table.write_text("x,y\n1,0\n2,1\n")
    result = cli("train", "--table", table, "--label", "converted", home=home)
    assert_one_line_error(result, "'converted'", "not in the table")


# --- option values ---


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [("--cadence", "hourly", "'daily' or 'weekly'"), ("--engine", "foo", "'duckdb', 'spark' or 'tiles'")],
)
def test_an_unknown_option_value_is_one_line_naming_it_and_the_choices(
    sim: Path, home: Path, tmp_path: Path, option: str, value: str, allowed: str
) -> None:
    result = cli("features", "build", *logs(sim), "--out", tmp_path / "f.parquet", option, value, home=home)
    assert_one_line_error(result, option, repr(value), allowed)


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--until", "2026-05-01", ("has no time zone", "2026-03-02T00:00:00Z")),
        ("--until", "yesterday", ("is not a time", "2026-03-02T00:00:00Z")),
        ("--horizon", "2w", ("is not a horizon; write days like 30d",)),
        ("--horizon", "0d", ("a horizon is at least 1 day",)),
    ],
    ids=["naive-until", "unparseable-until", "horizon-in-weeks", "zero-horizon"],
)
def test_a_time_or_horizon_that_cannot_be_used_is_one_line_naming_the_value_and_why(
    sim: Path, home: Path, option: str, value: str, words: tuple[str, ...]
) -> None:
    result = cli("train", *logs(sim), option, value, home=home)
    assert_one_line_error(result, option, repr(value), *words)


def test_an_option_of_the_wrong_type_is_one_line_naming_the_option(home: Path, tmp_path: Path) -> None:
    result = cli("simulate", "--out", tmp_path / "sim", "--leads", "many", home=home)
    assert_one_line_error(result, "--leads", "--help")


def test_a_bad_setting_in_the_environment_is_one_line_naming_it(sim: Path, home: Path) -> None:
    result = cli("train", *logs(sim), home=home, env={"LEADRADAR_TRAINING__HORIZON_DAYS": "a month"})
    assert_one_line_error(result, "training.horizon_days", "a month")


# --- state and data that are not there yet ---


@pytest.mark.slow  # about 6 s on 2 cores: left out of `make test-fast`
def test_until_before_the_data_is_one_line_saying_the_training_set_is_empty(sim: Path, home: Path) -> None:
    result = cli("train", *logs(sim), "--until", "2020-01-01T00:00:00Z", home=home)
    assert_one_line_error(result, sim / "stages.parquet", "no stage rows", "2020-01-01")


@pytest.mark.slow  # a fresh MLflow database takes a quarter of a minute to set up
def test_scoring_with_no_champion_yet_is_one_line_saying_what_to_run(sim: Path, tmp_path: Path) -> None:
    result = cli("score", *logs(sim), home=tmp_path / "fresh-home")
    assert_one_line_error(result, "champion", "leadradar train")


def test_an_events_file_with_a_damaged_page_is_one_line_naming_its_rows_and_column(
    sim: Path, home: Path, tmp_path: Path
) -> None:
    """Its footer reads, so every schema check passes; before, the build then stopped on DuckDB's traceback
    ("don't know what type"), naming no file. The training set from before stays as it was."""
    data = bytearray((sim / "events.parquet").read_bytes())
    meta = pq.ParquetFile(sim / "events.parquet")
    at = meta.metadata.row_group(0).column(meta.schema_arrow.names.index("sales_id")).data_page_offset
    data[at : at + 16] = bytes(b ^ 0xFF for b in data[at : at + 16])  # the page's header
    damaged = tmp_path / "events.parquet"
    damaged.write_bytes(bytes(data))
    out = tmp_path / "set.parquet"
    pq.write_table(pa.table({"yesterday": [1, 2, 3]}), out)
    before = out.read_bytes()
    result = cli("features", "build", "--events", damaged, "--stages", sim / "stages.parquet", "--out", out, home=home)
    assert "restore it" in assert_one_line_error(result, damaged, "rows 1–", "column sales_id", "cannot be read")
    assert out.read_bytes() == before


@pytest.mark.parametrize(
    "command",
    [
        ["features", "build", "--events", "{d}/events.parquet", "--stages", "{d}/stages.parquet", "--out", "{d}/{f}"],
        ["score", "--events", "{d}/events.parquet", "--stages", "{d}/stages.parquet", "--out", "{d}/{f}"],
    ],
    ids=["features build", "score"],
)
@pytest.mark.slow  # about 13 s on 2 cores: left out of `make test-fast`
@pytest.mark.parametrize("named", ["events.parquet", "items.parquet"])
def test_an_out_that_is_an_input_is_refused_and_the_input_kept(
    sim: Path, home: Path, tmp_path: Path, command: list[str], named: str
) -> None:
    """The events file named twice (or the items found beside it): written whole, the output replaced the input
    once the command was done with it (features build: the events file became the training set, then a traceback)."""
    data = tmp_path / "log"
    shutil.copytree(sim, data)
    before = (data / named).read_bytes()
    result = cli(*(a.format(d=data, f=named) for a in command), home=home)
    assert "name another file" in assert_one_line_error(result, data / named, "--out", named.split(".")[0])
    assert (data / named).read_bytes() == before


def test_a_simulation_into_a_folder_of_real_data_is_refused_and_into_an_earlier_simulation_is_not(
    sim: Path, home: Path, tmp_path: Path
) -> None:
    """A company's own log (events and stages, no simulated truth) was replaced by simulated tables."""
    own = tmp_path / "data"
    own.mkdir()
    for name in ("events.parquet", "stages.parquet"):
        shutil.copy(sim / name, own / name)
    before = (own / "events.parquet").read_bytes()
    result = cli("simulate", "--out", own, *SIM, home=home)
    assert_one_line_error(result, own, "events.parquet, stages.parquet", "no truth.parquet")
    assert (own / "events.parquet").read_bytes() == before
    again = tmp_path / "sim"
    shutil.copytree(sim, again)
    assert cli("simulate", "--out", again, *SIM[:-1], "2", home=home).returncode == 0
    assert (again / "events.parquet").read_bytes() != (sim / "events.parquet").read_bytes()


def test_an_out_that_is_a_sqlite_database_is_refused_and_the_database_kept(
    sim: Path, home: Path, tmp_path: Path
) -> None:
    """The event store's path given as --out: the training set would have replaced the database."""
    import sqlite3

    db = tmp_path / "events.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE events (seq INTEGER)")
    before = db.read_bytes()
    result = cli("features", "build", *logs(sim), "--out", db, home=home)
    assert_one_line_error(result, db, "--out", "SQLite database")
    result = cli("rank", "--tenant", "t01", "--csv", db, home=home)
    assert_one_line_error(result, db, "--csv", "SQLite database")
    assert db.read_bytes() == before


def test_ingest_of_the_events_file_its_out_folder_keeps_is_refused(sim: Path, home: Path, tmp_path: Path) -> None:
    """Before, every row was counted a duplicate of itself and the rejected ones stayed among the kept events."""
    folder = tmp_path / "log"
    shutil.copytree(sim, folder)
    before = (folder / "events.parquet").read_bytes()
    result = cli("ingest", folder / "events.parquet", "--out", folder, home=home)
    assert_one_line_error(result, folder / "events.parquet", "another folder")
    assert (folder / "events.parquet").read_bytes() == before
    assert not (folder / "quarantine.parquet").exists()


@pytest.mark.slow  # about 4 s on 2 cores: left out of `make test-fast`
def test_a_scored_table_written_over_the_table_is_refused(home: Path, tmp_path: Path) -> None:
    table = tmp_path / "leads.csv"
    table.write_text("lead_id,visits\nL1,3\n")
    result = cli("score", "--table", table, "--out", table, home=home)
    assert_one_line_error(result, table, "table file")
    assert table.read_text() == "lead_id,visits\nL1,3\n"


# --- a full disk ---


@pytest.mark.slow  # a build in a process of its own per engine
@pytest.mark.parametrize("engine", ["duckdb", "tiles"])
def test_a_full_disk_under_features_build_is_one_line_naming_the_file_and_the_last_set_is_kept(
    sim: Path, home: Path, tmp_path: Path, engine: str
) -> None:
    """Before: a traceback, and yesterday's training set cut short in place by the failed write."""
    with small_disk(tmp_path / "disk", "300k") as disk:
        out = disk / "set.parquet"
        pq.write_table(pa.table({"yesterday": [1, 2, 3]}), out)
        before = out.read_bytes()
        result = cli("features", "build", "--engine", engine, *logs(sim), "--out", out, home=home)
        assert "free some space" in assert_one_line_error(result, "disk is full", out)
        assert out.read_bytes() == before
        assert [p.name for p in disk.iterdir()] == ["set.parquet"], "a temporary file was left"


@pytest.mark.slow  # four builds, each in a process of its own
def test_kept_tiles_on_a_full_disk_are_one_line_and_once_there_is_room_the_build_equals_a_fresh_one(
    sim: Path, home: Path, tmp_path: Path
) -> None:
    args = ["features", "build", "--engine", "tiles", *logs(sim)]
    with small_disk(tmp_path / "disk", "300k") as disk:
        kept = {"LEADRADAR_FEATURES__TILES_DIR": str(disk / "tiles")}
        full = cli(*args, "--out", tmp_path / "kept.parquet", home=home, env=kept)
        assert_one_line_error(full, "disk is full", disk / "tiles")
        assert not (tmp_path / "kept.parquet").exists()
        grow(disk, "64m")
        assert cli(*args, "--out", tmp_path / "kept.parquet", home=home, env=kept).returncode == 0
        assert not list(disk.rglob("*.tmp")), "the failed build's files were not cleaned up"
        assert cli(*args, "--out", tmp_path / "kept.parquet", home=home, env=kept).returncode == 0
    assert cli(*args, "--out", tmp_path / "fresh.parquet", home=home).returncode == 0
    key = ["tenant_id", "lead_id", "cutoff"]
    got, fresh = (
        pd.read_parquet(tmp_path / f).sort_values(key).reset_index(drop=True) for f in ("kept.parquet", "fresh.parquet")
    )
    pd.testing.assert_frame_equal(got, fresh, rtol=1e-9)


@pytest.mark.slow  # a build in a process of its own
def test_a_duckdb_memory_cap_too_small_for_the_build_is_one_line_naming_the_setting(
    sim: Path, home: Path, tmp_path: Path
) -> None:
    """Before: DuckDB's OutOfMemoryException and its traceback."""
    capped = {"LEADRADAR_FEATURES__DUCKDB_MEMORY_LIMIT": "60MB"}
    result = cli("features", "build", *logs(sim), "--out", tmp_path / "set.parquet", home=home, env=capped)
    line = assert_one_line_error(result, "features.duckdb_memory_limit = 60MB", "Out of Memory")
    assert "--engine tiles" in line and not (tmp_path / "set.parquet").exists()


@pytest.mark.slow  # a build in a process of its own
def test_a_full_spill_folder_under_a_memory_cap_is_one_line_naming_the_folder(
    sim: Path, home: Path, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "disk", "1m") as disk:
        env = {"LEADRADAR_FEATURES__DUCKDB_MEMORY_LIMIT": "300MB", "TMPDIR": str(disk)}
        result = cli("features", "build", *logs(sim), "--out", tmp_path / "set.parquet", home=home, env=env)
    assert_one_line_error(result, "could not spill", disk / "leadradar-duckdb-spill", "300MB")


# --- --debug, and our own bugs ---


@pytest.mark.slow  # about 3 s on 2 cores: left out of `make test-fast`
def test_debug_shows_the_traceback_and_then_the_same_line(sim: Path, home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.parquet"
    plain = cli("train", "--events", missing, "--stages", sim / "stages.parquet", home=home)
    line = assert_one_line_error(plain, missing)
    for debug in (
        cli("--debug", "train", "--events", missing, "--stages", sim / "stages.parquet", home=home),
        cli("train", "--events", missing, "--stages", sim / "stages.parquet", home=home, env={"LEADRADAR_DEBUG": "1"}),
    ):
        assert debug.returncode == 2
        assert "Traceback (most recent call last)" in debug.stderr and "InputError" in debug.stderr
        assert debug.stderr.strip().splitlines()[-1] == line


def test_an_unexpected_exception_keeps_its_traceback() -> None:
    app = typer.Typer(cls=OneLineErrors)

    @app.command()
    def broken(bug: bool = True) -> None:
        if bug:
            raise ZeroDivisionError("our bug, not the user's")
        raise BadValueError("--bug cannot be off")

    @app.command()
    def fine() -> None:
        """A second command, so `broken` stays a subcommand."""

    ours = CliRunner().invoke(app, ["broken"])
    assert isinstance(ours.exception, ZeroDivisionError) and ours.exit_code == 1
    theirs = CliRunner().invoke(app, ["broken", "--no-bug"])
    assert theirs.exit_code == 2 and theirs.stderr.strip() == "error: --bug cannot be off"


# --- optional contract columns and a foreign truth file: read as missing or ignored, never refused ---


@pytest.fixture(scope="module")
def trained_without_deal_value(sim: Path, home: Path, tmp_path_factory: pytest.TempPathFactory):
    """`leadradar train --json` on stages without deal_value (optional), beside a truth.parquet not the simulator's."""
    folder = tmp_path_factory.mktemp("cli-errors-nodeal")
    shutil.copy(sim / "events.parquet", folder / "events.parquet")
    pq.write_table(pq.read_table(sim / "stages.parquet").drop(["deal_value"]), folder / "stages.parquet")
    pq.write_table(pa.table({"lead": ["L1"], "score": [0.3]}), folder / "truth.parquet")
    one_model = {"LEADRADAR_TRAINING__HORIZONS_DAYS": "[30]", "LEADRADAR_TRAINING__TRANSITION_MODELS": "false"}
    return folder, cli("train", *logs(folder), "--json", home=home, env=one_model)  # the logs are the test


@pytest.mark.slow  # trains a model
def test_stages_without_deal_value_train_fine(trained_without_deal_value) -> None:
    _, result = trained_without_deal_value
    assert result.returncode == 0, result.stderr
    assert "deal_value" not in result.stderr
    trained = json.loads(result.stdout.strip().splitlines()[-1])
    assert trained["model_version"] and trained["test_metrics"]["auc"] > 0.5


@pytest.mark.slow  # trains a model
def test_a_foreign_truth_file_beside_the_events_is_ignored_with_one_warning(trained_without_deal_value) -> None:
    folder, result = trained_without_deal_value
    assert result.returncode == 0 and "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "truth.parquet" in line]
    assert len(warnings) == 1 and str(folder / "truth.parquet") in warnings[0] and "ignored" in warnings[0]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])["test_metrics"]
    assert "truth_coverage" not in metrics and "oracle_auc" not in metrics
