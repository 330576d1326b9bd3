"""The feature query compiled once and kept: a service start (SQLite) or a DuckDB build reads it instead of
compiling it again, and reads it only for the same code, definitions, columns and inputs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from leadradar.config import Settings
from leadradar.features import build as build_module
from leadradar.features.build import compiled_query
from leadradar.features.online import OnlineFeatures
from leadradar.features.registry import FeatureRegistry, build_registry
from leadradar.features.simulator import SimulationConfig, simulate, simulation_end
from leadradar.features.tiles.build import SKIPPED_STAGES
from leadradar.features.tiles.online import GIVEN, OnlineTiles

SETTINGS = Settings()
REGISTRY = build_registry(SETTINGS)
SIM = SimulationConfig(tenants=1, leads=150, days=60, seed=4)


def kept(cache: Path) -> list[Path]:
    return sorted(cache.glob("online-*.json"))


def no_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("compiled again")

    monkeypatch.setattr(build_module, "feature_query", refuse)


def test_a_query_compiled_once_is_read_back_whole_and_answers_the_same(tmp_path, monkeypatch):
    paths = simulate(SIM, SETTINGS).write(tmp_path / "sim")
    events, stages, items = (pq.read_table(paths[k]) for k in ("events", "stages", "items"))
    cutoff = [pd.Timestamp(simulation_end(SIM), tz="UTC") - pd.Timedelta(days=3)]
    fresh = OnlineFeatures(SETTINGS, REGISTRY, cache=tmp_path / "cache")
    assert len(kept(tmp_path / "cache")) == 1
    no_compiling(monkeypatch)
    read = OnlineFeatures(SETTINGS, REGISTRY, cache=tmp_path / "cache")
    assert (read.sql, read.stages, read.inputs) == (fresh.sql, fresh.stages, fresh.inputs)
    rows = read.compute(events, stages, cutoff, items)
    assert len(rows) > 50
    pd.testing.assert_frame_equal(rows, fresh.compute(events, stages, cutoff, items))


def test_the_tables_a_caller_gives_keep_their_schemas_through_the_file(tmp_path, monkeypatch):
    rest = REGISTRY.select([f.name for f in REGISTRY if f.tile is None and f.source != "activity"])
    first = compiled_query(SETTINGS, rest, SKIPPED_STAGES, GIVEN, tmp_path)
    assert set(first.provided) == set(GIVEN)
    no_compiling(monkeypatch)
    assert compiled_query(SETTINGS, rest, SKIPPED_STAGES, GIVEN, tmp_path) == first
    tiles = OnlineTiles(SETTINGS, REGISTRY, query_cache=tmp_path)
    assert tiles.rest.sql == first.sql


def test_other_definitions_or_columns_are_compiled_not_read(tmp_path):
    base = compiled_query(SETTINGS, REGISTRY, cache=tmp_path)
    windows = Settings(features={"windows_days": (1, 7, 30)})
    other = compiled_query(windows, build_registry(windows), cache=tmp_path)
    fewer = compiled_query(SETTINGS, REGISTRY.select(REGISTRY.names[:30]), cache=tmp_path)
    assert len({base.sql, other.sql, fewer.sql}) == 3 and len(kept(tmp_path)) == 3
    retrained = Settings(training={"num_boost_round": 7})  # not a definition: the same file
    assert compiled_query(retrained, build_registry(retrained), cache=tmp_path) == base
    assert len(kept(tmp_path)) == 3


def test_a_registry_made_by_hand_is_compiled_each_time(tmp_path):
    by_hand = FeatureRegistry(list(REGISTRY.select(REGISTRY.names[:10])))
    assert compiled_query(SETTINGS, by_hand, cache=tmp_path).sql
    assert kept(tmp_path) == []


def test_a_damaged_file_is_compiled_again_and_replaced(tmp_path, caplog):
    base = compiled_query(SETTINGS, REGISTRY, cache=tmp_path)
    (path,) = kept(tmp_path)
    path.write_text(path.read_text()[:1000])
    assert compiled_query(SETTINGS, REGISTRY, cache=tmp_path) == base
    assert "unreadable" in caplog.text
    assert build_module.CompiledQuery.from_json(path.read_text()) == base


def test_a_cache_that_cannot_be_written_only_costs_the_compiling(tmp_path, caplog):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert compiled_query(SETTINGS, REGISTRY, cache=blocked / "cache").sql
    assert "cannot keep the compiled feature query" in caplog.text and "unreadable" not in caplog.text


def test_the_folder_keeps_only_the_newest_queries(tmp_path, monkeypatch):
    monkeypatch.setattr(build_module, "KEPT_QUERIES", 2)
    for n in (10, 20, 30):
        compiled_query(SETTINGS, REGISTRY.select(REGISTRY.names[:n]), cache=tmp_path)
    assert len(kept(tmp_path)) == 2


STAGE_TABLES = ("lr_grid_events", "lr_grid_activity", "lr_grid_items", "lr_spine", "lr_sales_context")


def column_types(con, table: str) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in con.raw_sql(f"DESCRIBE {table}").fetchall()]


@pytest.mark.slow  # about 8 s on 2 cores: left out of `make test-fast`
def test_a_duckdb_build_runs_the_compiled_sql_and_gets_the_expressions_rows(tmp_path, monkeypatch):
    """Training sets and feature tables on DuckDB run the query's SQL compiled once (kept in the query cache), on
    views of their inputs: the same rows as the expression with its stages materialised, in stage tables of the same
    column types, with and without the optional items and leads; a later build neither builds nor compiles it."""
    from leadradar.features import trainset as trainset_module
    from leadradar.features.engines import connect, materializer, to_pandas
    from leadradar.features.radar_log import RadarLog
    from leadradar.features.trainset import build_training_set

    settings = Settings(home=tmp_path / "home")
    paths = simulate(SIM, settings).write(tmp_path / "sim")
    end = pd.Timestamp(simulation_end(SIM), tz="UTC")
    cutoffs = [end - pd.Timedelta(days=d) for d in (30, 10, 3)]
    for optional in ({}, {"items": paths["items"], "leads": paths["leads"]}):
        con = connect("duckdb")
        ev, st, cut, it, ld, _ = build_module._bound(
            con, paths["events"], paths["stages"], cutoffs, settings, optional.get("items"), optional.get("leads")
        )
        inputs = (ev, st, cut, settings, REGISTRY, it)
        expected = to_pandas(build_module.feature_query(*inputs, stage=materializer(con), leads=ld).table)
        typed = {name: column_types(con, name) for name in STAGE_TABLES}
        got = to_pandas(build_module.bound_query(con, *inputs, ld).table)
        assert {name: column_types(con, name) for name in STAGE_TABLES} == typed  # no HUGEINT counts
        assert len(got) > 100
        keys = ["tenant_id", "lead_id", "cutoff_us"]
        pd.testing.assert_frame_equal(
            got.sort_values(keys, ignore_index=True), expected.sort_values(keys, ignore_index=True)
        )
        con.disconnect()
    assert len(sorted((settings.query_cache_dir).glob("duckdb-*.json"))) == 2
    log = RadarLog.from_paths(paths["events"], paths["stages"])
    first = build_training_set(log, settings).frame
    no_compiling(monkeypatch)
    monkeypatch.setattr(trainset_module, "feature_query", build_module.feature_query)  # the refusing one
    pd.testing.assert_frame_equal(build_training_set(log, settings).frame, first)
