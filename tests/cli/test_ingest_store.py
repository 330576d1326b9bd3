"""`leadradar ingest` writes into the event store, and train, tune, score and features build read it without files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from leadradar.cli import app
from leadradar.config import Settings
from leadradar.features.store import EventStore

NOW = pd.Timestamp.now(tz="UTC").floor("s")


@pytest.fixture
def store_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Path:
    """A fresh event store and score store for one test; the session's models stay readable."""
    db = tmp_path / "events.db"
    monkeypatch.setenv("LEADRADAR_STORE__URL", f"sqlite:///{db}")
    monkeypatch.setenv("LEADRADAR_SERVING__SCORE_STORE_URL", f"sqlite:///{tmp_path / 'scores.db'}")
    return db


def run(*args: str | Path) -> dict:
    result = CliRunner().invoke(app, [*map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def opened(db: Path) -> EventStore:
    return EventStore(f"sqlite:///{db}", Settings())


def event(i: int, ts: pd.Timestamp, **extra: str) -> dict:
    return {
        "event_id": f"e{i}",
        "tenant_id": "t1",
        "lead_id": "L1",
        "sales_id": "s1",
        "ts": ts.isoformat(),
        "event_type": "card_view",
        **extra,
    }


def test_ingest_stores_a_simulated_log_once_and_a_second_run_finds_only_duplicates(small_sim, store_env):
    first = run(
        "ingest", small_sim.events, small_sim.stages, "--items", small_sim.items, "--leads", small_sim.leads, "--json"
    )
    rows = pq.read_metadata(small_sim.events).num_rows
    events, stages, items, leads = first["files"]
    assert (events["kind"], stages["kind"], items["kind"], leads["kind"]) == ("events", "stages", "items", "leads")
    assert events["received"] == rows == events["stored"] + events["duplicate"] + events["quarantined"]
    assert events["duplicate"] > 0 and events["arrival"] == "arrivals.parquet"
    assert first["stored_now"]["events"] == events["stored"]
    assert first["stored_now"]["stages"] == pq.read_metadata(small_sim.stages).num_rows

    again = run("ingest", small_sim.events, "--json")
    assert again["files"][0]["stored"] == 0 and again["files"][0]["duplicate"] == rows
    assert again["stored_now"] == first["stored_now"]


def test_an_arrived_at_column_gives_arrival_and_without_one_the_file_is_a_backfill(tmp_path, store_env):
    ts = NOW - pd.Timedelta(days=3)
    late = NOW - pd.Timedelta(days=1)
    pd.DataFrame([event(1, ts, arrived_at=late.isoformat()), event(2, ts, arrived_at="")]).to_csv(
        tmp_path / "late.csv", index=False
    )
    pd.DataFrame([event(3, ts)]).to_csv(tmp_path / "old.csv", index=False)
    pd.DataFrame([event(4, ts)]).to_csv(tmp_path / "now.csv", index=False)
    run("ingest", tmp_path / "late.csv", tmp_path / "old.csv", "--json")
    run("ingest", tmp_path / "now.csv", "--arrived-now", "--json")

    seen = opened(store_env).events(as_seen=True).to_pandas().set_index("event_id")["ts"]
    assert seen["e1"] == late
    assert seen["e2"] == seen["e3"] == ts
    assert seen["e4"] >= NOW
    before_arrival = opened(store_env).events(until=late - pd.Timedelta(hours=1), as_seen=True)
    assert sorted(before_arrival["event_id"].to_pylist()) == ["e2", "e3"]


def test_a_stage_file_is_told_by_its_columns(tmp_path, store_env):
    when = (NOW - pd.Timedelta(days=2)).isoformat()
    pd.DataFrame([{"tenant_id": "t1", "lead_id": "L1", "stage": "engaged", "ts": when}]).to_csv(
        tmp_path / "crm.csv", index=False
    )
    answer = run("ingest", tmp_path / "crm.csv", "--json")
    assert answer["files"][0]["kind"] == "stages" and answer["stored_now"]["stages"] == 1


def test_an_arrival_without_a_time_zone_is_one_line_naming_the_file_and_row(tmp_path, store_env):
    ts = NOW - pd.Timedelta(days=3)
    pd.DataFrame([event(1, ts, arrived_at="2026-03-02 08:00:00")]).to_csv(tmp_path / "naive.csv", index=False)
    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "naive.csv")])
    assert result.exit_code == 2
    assert "naive.csv: row 1: arrived_at" in " ".join(result.output.split())
    assert opened(store_env).counts()["events"] == 0


def test_features_build_reads_the_store_and_equals_the_files_for_a_backfilled_log(small_sim, store_env, tmp_path):
    pd.read_parquet(small_sim.events).to_parquet(tmp_path / "backfill.parquet")  # no arrivals beside it
    run("ingest", tmp_path / "backfill.parquet", "--stages", small_sim.stages, "--json")
    until = "2026-08-03T00:00:00Z"
    common = ["--until", until, "--items", small_sim.items, "--leads", small_sim.leads]
    for name, inputs in (("files", ["--events", small_sim.events, "--stages", small_sim.stages]), ("store", [])):
        result = CliRunner().invoke(
            app, ["features", "build", *map(str, [*inputs, *common]), "--out", f"{tmp_path / name}.parquet"]
        )
        assert result.exit_code == 0, result.output
    from_files = pd.read_parquet(tmp_path / "files.parquet")
    from_store = pd.read_parquet(tmp_path / "store.parquet")
    key = ["tenant_id", "lead_id", "cutoff"]
    pd.testing.assert_frame_equal(
        from_files.sort_values(key).reset_index(drop=True), from_store.sort_values(key).reset_index(drop=True)
    )


def test_score_without_files_scores_the_open_leads_of_the_store_and_keeps_the_context(
    small_sim, trained, store_env, tmp_path
):
    from leadradar.serving.store import ScoreStore

    run("ingest", small_sim.events, small_sim.stages, "--items", small_sim.items, "--leads", small_sim.leads, "--json")
    as_of = "2026-09-28T00:00:00Z"
    result = CliRunner().invoke(app, ["score", "--as-of", as_of, "--out", str(tmp_path / "scores.parquet")])
    assert result.exit_code == 0, result.output
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert len(scores) > 100 and scores["p_close"].between(0, 1).all()
    store = ScoreStore(f"sqlite:///{tmp_path / 'scores.db'}")
    tenant = scores["tenant_id"].iloc[0]
    assert store.runs(tenant) and store.context(tenant)


def test_a_folder_stands_for_its_files_each_counted(tmp_path, store_env):
    """A nightly export's folder: each Parquet, CSV or JSON Lines file in it (at any depth, in name order) is one
    file of the report; hidden ones are left out, and a folder with none is one line."""
    export = tmp_path / "export"
    (export / "late").mkdir(parents=True)
    pd.DataFrame([event(1, NOW - pd.Timedelta(days=2)), event(2, NOW - pd.Timedelta(days=2))]).to_csv(
        export / "2026-01-01.csv", index=False
    )
    pd.DataFrame([event(3, NOW - pd.Timedelta(days=1))]).to_json(
        export / "late" / "x.jsonl", orient="records", lines=True
    )
    (export / "_SUCCESS").touch()
    (export / ".2026-01-02.csv").write_text("being written")
    (export / "_temporary").mkdir()
    (export / "_temporary" / "part.csv").write_text("being written")
    (export / "notes.txt").write_text("exported by the CRM")
    report = run("ingest", export, "--json")
    assert [Path(f["file"]).name for f in report["files"]] == ["2026-01-01.csv", "x.jsonl"]
    assert [f["stored"] for f in report["files"]] == [2, 1]
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "empty: no .parquet, .csv, .jsonl, .ndjson files in this folder" in result.output
