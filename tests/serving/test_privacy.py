"""Forgetting a lead (PIPL) and retention: after `leadradar forget`, no table of any database under the data
directory, no database file's bytes and no Parquet file there holds the lead's id (the audit row names its hash);
the next training set leaves it out; retention deletes what is older than the configured days, by a given clock.
Real SQLite stores, the real command line."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from leadradar.cli import app
from leadradar.config import Settings
from leadradar.features.radar_log import RadarLog
from leadradar.features.store import EventStore
from leadradar.features.store.forget import log_without_forgotten
from leadradar.features.validation import validate_events, validate_stages
from leadradar.serving.alerts.alert import Alert
from leadradar.serving.alerts.outbox import Outbox, Target
from leadradar.serving.alerts.restraint import Decided
from leadradar.serving.audit import AuditLog
from leadradar.serving.privacy import FORGETTERS, apply_retention, register_forgetter
from leadradar.serving.store import ScoreStore
from leadradar.training.tracking import synthetic_example
from tests.support.kept_files import kept_leads
from tests.support.raw_events import event

TENANT = "t01"
LEAD = "forget-me-7f3a9c"
OTHER = "keep-me-21b4"
HOOK = Target("hook", "webhook", None, "en")


def _events(lead: str, n: int, at: pd.Timestamp, **extra: object) -> list[dict]:
    return [
        event(
            f"{lead}-{k}",
            event_id=f"{lead}-{k}",
            tenant_id=TENANT,
            lead_id=lead,
            ts=(at - pd.Timedelta(hours=n - k)).isoformat(),
            **extra,
        )
        for k in range(n)
    ]


def _scores(lead: str, as_of: pd.Timestamp) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tenant_id": [TENANT],
            "lead_id": [lead],
            "as_of": [as_of],
            "model_version": ["1"],
            "model_name": ["m"],
            "sales_id": ["S1"],
            "stage": ["engaged"],
            "p_close": [0.3],
            "detail": [json.dumps({"reasons": []})],
        }
    )


def _fill(settings: Settings, now: pd.Timestamp) -> None:
    """Both leads everywhere the project writes a lead: events (one referred by the forgotten lead), a stage change,
    a quarantined event, CRM attributes, batch and live scores, the kept timeline, a Parquet file of scores."""
    store = EventStore.open(settings)
    rows = _events(LEAD, 3, now) + _events(OTHER, 2, now, referrer_lead_id=LEAD)
    rows.append(event("bad", event_id="bad-1", tenant_id=TENANT, lead_id=LEAD, event_type="no_such_type"))
    done = store.append_events(validate_events(pd.DataFrame(rows), settings, now), source="test", arrived=now)
    assert done.stored == 5 and done.quarantined == 1
    stages = pd.DataFrame(
        {"tenant_id": [TENANT, TENANT], "lead_id": [LEAD, OTHER], "stage": ["engaged"] * 2, "ts": [now.isoformat()] * 2}
    )
    assert store.append_stages(validate_stages(stages, settings, now), source="test").stored == 2
    store.put_catalog("leads", pd.DataFrame({"tenant_id": [TENANT] * 2, "lead_id": [LEAD, OTHER]}), "lead_id")
    store.close()

    scores = ScoreStore(settings.score_store_url)
    scores.write(pd.concat([_scores(LEAD, now), _scores(OTHER, now)], ignore_index=True))
    live = pd.concat([_scores(LEAD, now), _scores(OTHER, now)], ignore_index=True).drop(columns="as_of")
    scores.write_live(live.assign(scored_at=now, grade="B", moved_by=[f"{LEAD}-2", f"{OTHER}-1"], moved_at=now))
    timeline = pd.DataFrame(_events(LEAD, 2, now) + _events(OTHER, 1, now))
    timeline = timeline.assign(ts=pd.to_datetime(timeline["ts"], utc=True), dwell_s=30.0)
    scores.write_events(
        timeline[["tenant_id", "lead_id", "event_id", "ts", "event_type", "sales_id", "dwell_s", "item_id", "channel"]],
        now,
    )
    scores.engine.dispose()
    _alerts(settings, [(LEAD, now), (OTHER, now)])
    _scores(LEAD, now).to_parquet(settings.scores_dir / "run.parquet")
    pd.concat([_scores(LEAD, now), _scores(OTHER, now)]).to_parquet(settings.scores_dir / "both.parquet")


def _alerts(settings: Settings, raised: list[tuple[str, pd.Timestamp]]) -> None:
    """One alert per (lead, time), each with a delivery to a webhook, in the outbox."""
    outbox = Outbox(settings.score_store_url, settings.alerts.rules)
    alerts = [
        Alert(TENANT, lead, "S1", "hot_action", at.to_pydatetime(), 0.4, 0.2, "B", f"{TENANT}|{lead}|hot")  # type: ignore[arg-type]
        for lead, at in raised
    ]
    ids = outbox.record([Decided(a, "instant", a.at) for a in alerts], lambda a: [HOOK], alerts[-1].at)
    assert len(ids) == len(alerts) and all(outbox.deliveries(i) for i in ids)
    outbox.engine.dispose()


def _traces(folder: Path, needle: str) -> list[str]:
    """Every place under `folder` that holds `needle`: a cell of a table, a database file's bytes, a Parquet cell."""
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            if frame.astype(str).apply(lambda c: c.str.contains(needle, regex=False)).to_numpy().any():
                found.append(f"{path.name}: a row")
            continue
        if needle.encode() in path.read_bytes():
            found.append(f"{path.name}: its bytes")
        if path.suffix == ".db":
            con = sqlite3.connect(path)
            try:
                for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
                    for row in con.execute(f'SELECT * FROM "{table}"'):
                        if any(needle in str(v) for v in row):
                            found.append(f"{path.name}: table {table}")
            finally:
                con.close()
    return found


@pytest.fixture
def filled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("LEADRADAR_HOME", str(tmp_path / "home"))
    settings = Settings(home=tmp_path / "home")
    settings.ensure_dirs()
    _fill(settings, pd.Timestamp.now(tz="UTC").floor("s"))
    return settings


def test_after_forget_no_database_table_file_or_parquet_under_the_data_dir_names_the_lead(filled: Settings):
    home = filled.data_dir
    assert len(_traces(home, LEAD)) >= 6  # the check sees the lead where it was written
    called = []
    register_forgetter("test-alerts", lambda tenant, lead: called.append((tenant, lead)) or 1)
    try:
        result = CliRunner().invoke(app, ["forget", "--tenant", TENANT, "--lead", LEAD, "--json"])
    finally:
        FORGETTERS.pop("test-alerts")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert called == [(TENANT, LEAD)]
    assert report["deleted"]["events.events"] == 3 and report["deleted"]["events.referrals_cleared"] == 2
    assert report["deleted"]["files"] == 2 and report["deleted"]["alerts"] == 1

    assert _traces(home, LEAD) == []
    assert {
        "events.db: table events",
        "scores.db: table live_scores",
        "scores.db: table alerts",
        "both.parquet: a row",
    } <= set(_traces(home, OTHER))
    store = EventStore.open(filled)
    kept = store.events(TENANT).to_pandas()
    assert kept["lead_id"].tolist() == [OTHER, OTHER] and kept["referrer_lead_id"].isna().all()
    store.close()
    audit = AuditLog(filled.score_store_url).read(TENANT)
    assert audit[0].action == "deleted" and audit[0].detail == f"lead_hash={report['lead_hash']}"


def test_forget_trims_the_ids_as_the_rules_do_and_refuses_an_empty_one_deleting_nothing(filled: Settings):
    home = filled.data_dir
    before = _traces(home, LEAD)
    for tenant, lead, says in ((TENANT, "  ", "lead id is empty"), (" \t", LEAD, "tenant id is empty")):
        result = CliRunner().invoke(app, ["forget", "--tenant", tenant, "--lead", lead])
        assert result.exit_code == 2 and says in result.output, result.output
        assert "Traceback" not in result.output
    assert _traces(home, LEAD) == before and AuditLog(filled.score_store_url).read(TENANT) == []

    result = CliRunner().invoke(app, ["forget", "--tenant", f" {TENANT}", "--lead", f" {LEAD}\t", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["tenant_id"] == TENANT and report["deleted"]["events.events"] == 3
    assert _traces(home, LEAD) == []


def test_a_training_log_from_files_written_before_the_forget_leaves_the_forgotten_lead_out(
    filled: Settings, tmp_path: Path
):
    store = EventStore.open(filled)
    events, stages = store.events(TENANT).to_pandas(), store.stages(TENANT).to_pandas()
    events.to_parquet(tmp_path / "events.parquet")
    stages.to_parquet(tmp_path / "stages.parquet")
    files = RadarLog(tmp_path / "events.parquet", tmp_path / "stages.parquet")
    assert log_without_forgotten(store, files) is files  # nothing forgotten yet: the files stay files
    store.close()
    assert CliRunner().invoke(app, ["forget", "--tenant", TENANT, "--lead", LEAD]).exit_code == 0
    store = EventStore.open(filled)
    log = log_without_forgotten(store, files)
    store.close()
    assert set(log.events.column("lead_id").to_pylist()) == {OTHER}
    assert set(log.stages.column("lead_id").to_pylist()) == {OTHER}


def test_retention_deletes_events_quarantine_and_scores_older_than_the_days_and_keeps_the_rest(tmp_path: Path):
    settings = Settings(home=tmp_path / "home", privacy={"retention_days": 30})
    settings.ensure_dirs()
    now = pd.Timestamp("2026-06-01T00:00:00Z")
    old, recent = now - pd.Timedelta(days=40), now - pd.Timedelta(days=5)
    store = EventStore.open(settings)
    rows = _events("old-lead", 2, old) + _events("new-lead", 2, recent)
    rows.append(event("bad", event_id="bad-old", tenant_id=TENANT, lead_id="old-lead", event_type="nope"))
    store.append_events(validate_events(pd.DataFrame(rows), settings, now), source="t", arrived=now, now=old)
    scores = ScoreStore(settings.score_store_url)
    scores.write(pd.concat([_scores("old-lead", old), _scores("new-lead", recent)], ignore_index=True))
    _alerts(settings, [("old-lead", old), ("new-lead", recent)])

    deleted = apply_retention(settings, store, scores, now=now)
    assert deleted["events.events"] == 2 and deleted["events.quarantine"] == 1 and deleted["scores.batch"] == 1
    assert deleted["alerts"] == 1
    assert [a.lead_id for a in Outbox(settings.score_store_url, settings.alerts.rules).alerts(TENANT, old)] == [
        "new-lead"
    ]
    assert set(store.events(TENANT).column("lead_id").to_pylist()) == {"new-lead"}
    assert store.quarantine(TENANT) == []
    assert scores.runs(TENANT) == [(recent.to_pydatetime(), "1")]
    assert apply_retention(settings, store, scores, now=now) == {
        k: 0 for k in deleted
    }  # a second pass has nothing left to do
    store.close()
    none = Settings(home=tmp_path / "home")
    assert apply_retention(none, EventStore.open(none), scores, now=now + pd.Timedelta(days=999)) == {}


def test_the_mlflow_input_example_is_no_row_of_the_training_table():
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "views_7d": rng.integers(0, 50, 200),
            "dwell_mean": rng.gamma(2.0, 10.0, 200),
            "stage": pd.Categorical(rng.choice(["new", "engaged", "contacted"], 200)),
        }
    )
    example = synthetic_example(table)
    assert len(example) == 5 and list(example.dtypes) == list(table.dtypes)
    real = set(map(tuple, table.astype(str).to_numpy()))
    assert not any(tuple(row) in real for row in example.astype(str).to_numpy())


def test_the_scheduler_applies_retention_nightly_only_when_retention_days_is_set(tmp_path: Path):
    from leadradar.lifecycle import retention_job, scheduler_for

    assert "retention" not in scheduler_for(Settings(home=tmp_path / "a"), blocking=False).jobs
    settings = Settings(home=tmp_path / "b", privacy={"retention_days": 30})
    settings.ensure_dirs()
    assert scheduler_for(settings, blocking=False).jobs["retention"].cron == settings.privacy.retention_cron
    now = pd.Timestamp("2026-06-01T00:00:00Z")
    store = EventStore.open(settings)
    rows = _events("old-lead", 2, now - pd.Timedelta(days=31)) + _events("new-lead", 1, now)
    store.append_events(validate_events(pd.DataFrame(rows), settings, now), source="t", arrived=now)
    assert retention_job(settings, now=now).detail["events.events"] == 2
    assert store.events(TENANT).column("lead_id").to_pylist() == ["new-lead"]
    store.close()


@pytest.mark.parametrize("inside", [False, True], ids=["outside the data dir", "inside the data dir"])
def test_forget_takes_the_lead_out_of_kept_tiles_and_rows_wherever_they_are(
    filled: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inside: bool
):
    """`features.tiles_dir` holds day tiles and feature rows made from the lead's events, wherever it is. Inside the
    data directory the sweep of its Parquet files must not get there first: the kept manifests would still vouch
    for the lead's days, and a build from a file that still holds the lead would read them back without it."""
    from leadradar.features.build import compute_features
    from leadradar.features.registry import build_registry
    from tests.support.parity import assert_same_features

    kept = filled.data_dir / "tiles" if inside else tmp_path / "kept-tiles"
    monkeypatch.setenv("LEADRADAR_FEATURES__TILES_DIR", str(kept))
    settings = Settings(home=filled.home)
    store = EventStore.open(settings)
    log = RadarLog.from_store(store)
    cutoff = pd.Timestamp.now(tz="UTC").ceil("D") + pd.Timedelta(days=1)
    registry = build_registry(settings)
    compute_features(log.events, log.stages, [cutoff], settings, registry, engine="tiles")
    store.close()
    assert LEAD in kept_leads(kept)
    result = CliRunner().invoke(app, ["forget", "--tenant", TENANT, "--lead", LEAD, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["deleted"]["kept_features"] > 0
    assert LEAD not in kept_leads(kept)
    assert OTHER in kept_leads(kept)
    again = compute_features(log.events, log.stages, [cutoff], settings, registry, engine="tiles")  # still holds it
    monkeypatch.delenv("LEADRADAR_FEATURES__TILES_DIR")
    reference = compute_features(log.events, log.stages, [cutoff], Settings(home=filled.home), registry, engine="tiles")
    assert_same_features(again, reference, registry)


def test_retention_takes_old_days_out_of_the_kept_tiles_too(tmp_path: Path):
    """`features.tiles_dir` holds day tiles made from the events retention deletes; they go the same night."""
    import pyarrow.parquet as pq

    from leadradar.features.build import compute_features
    from leadradar.features.registry import build_registry

    kept = tmp_path / "kept-tiles"
    settings = Settings(home=tmp_path / "home", privacy={"retention_days": 30}, features={"tiles_dir": str(kept)})
    settings.ensure_dirs()
    now = pd.Timestamp("2026-06-01T00:00:00Z")
    store = EventStore.open(settings)
    rows = _events("old-lead", 2, now - pd.Timedelta(days=40)) + _events("new-lead", 2, now - pd.Timedelta(days=5))
    store.append_events(validate_events(pd.DataFrame(rows), settings, now), source="t", arrived=now, now=now)
    log = RadarLog.from_store(store, as_seen=False)  # by event time: the arrival is the same for all
    compute_features(log.events, log.stages, [now], settings, build_registry(settings), engine="tiles")
    assert "old-lead" in kept_leads(kept)
    deleted = apply_retention(settings, store, ScoreStore(settings.score_store_url), now=now)
    store.close()
    assert deleted["events.events"] == 2 and deleted["kept_features"] > 0
    tiles = {lead for p in kept.rglob("seg-*.parquet") for lead in pq.read_table(p)["lead_id"].to_pylist()}
    assert tiles == {"new-lead"}  # the rows as of `now` keep both, as the scores as of then do, until a build


def test_forget_deletes_everything_else_while_a_build_holds_the_kept_tiles_and_them_after(
    filled: Settings, tmp_path: Path
):
    """A build can hold the kept tiles' lock for minutes; forgetting waits for it for them alone, last: the events,
    scores, files and alerts are gone meanwhile (before, the files, feedback and alerts waited behind it too, and a
    service stopped in the wait left them)."""
    import threading
    import time

    from leadradar.features.build import compute_features
    from leadradar.features.locks import exclusive
    from leadradar.features.registry import build_registry
    from leadradar.features.tiles.store import BUILD_LOCK
    from leadradar.serving.privacy import forget_lead

    kept = tmp_path / "kept-tiles"
    settings = Settings(home=filled.home, features={"tiles_dir": str(kept)})
    store = EventStore.open(settings)
    log = RadarLog.from_store(store)
    cutoff = pd.Timestamp.now(tz="UTC").ceil("D") + pd.Timedelta(days=1)
    compute_features(log.events, log.stages, [cutoff], settings, build_registry(settings), engine="tiles")
    scores, audit = ScoreStore(settings.score_store_url), AuditLog(settings.score_store_url)
    done: dict = {}

    def forget() -> None:
        done["report"] = forget_lead(settings, store, scores, audit, TENANT, LEAD, "test")

    with exclusive(kept, BUILD_LOCK):  # a build holding the kept tiles
        worker = threading.Thread(target=forget)
        worker.start()
        deadline = time.monotonic() + 20
        while _traces(filled.data_dir, LEAD) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _traces(filled.data_dir, LEAD) == []
        assert worker.is_alive() and LEAD in kept_leads(kept)
    worker.join(30)
    store.close()
    assert not worker.is_alive() and done["report"].deleted["kept_features"] > 0
    assert LEAD not in kept_leads(kept) and OTHER in kept_leads(kept)
