"""Ingestion keeps every good event once, quarantines every bad one with a reason, and loses nothing."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from leadradar.config import Settings
from leadradar.features.contract import EVENT_COLUMNS, EVENT_SCHEMA
from leadradar.features.ingest import (
    EVENTS_FILE,
    QUARANTINE_FILE,
    REPORT_FILE,
    IngestError,
    IngestReport,
    ingest,
)
from tests.support.raw_events import NOW, event


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()


def write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    pd.DataFrame(rows, dtype=object).to_csv(path, index=False)
    return path


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def stored(out: Path) -> pd.DataFrame:
    return pq.read_table(out / EVENTS_FILE).to_pandas()


def quarantine(out: Path) -> pd.DataFrame:
    return pq.read_table(out / QUARANTINE_FILE).to_pandas()


def assert_reconciles(report: IngestReport) -> None:
    for counts in [*report.files, report.total]:
        assert counts.rows_in == counts.accepted + counts.rejected + counts.duplicates
        assert sum(counts.rejected_by_reason_field.values()) == counts.rejected


# --- validation: one reason per bad row --------------------------------------------------------


def test_bad_rows_are_quarantined_with_one_reason_each_and_counts_reconcile(tmp_path, settings):
    rows = [
        event(1),
        event(2, ts="2026-03-01 10:00:00"),
        event(3, ts="yesterday"),
        event(4, event_type="cardview"),
        event(5, dwell_s="-3"),
        event(6, lead_id=""),
        event(7, ts="2027-01-01T00:00:00Z"),
        event(8, ts="2026-03-01 10:00:00Z", dwell_s=None),
    ]
    src = write_csv(tmp_path / "events.csv", rows)

    report = ingest([src], tmp_path / "out", settings, now=NOW)

    bad = quarantine(tmp_path / "out").set_index("event_id")
    assert bad["field"].to_dict() == {
        "ev2": "ts",
        "ev3": "ts",
        "ev4": "event_type",
        "ev5": "dwell_s",
        "ev6": "lead_id",
        "ev7": "ts",
    }
    assert bad.loc["ev2", "reason"].startswith("ts: naive timestamp '2026-03-01 10:00:00' (no time zone")
    assert "'yesterday' is not a timestamp" in bad.loc["ev3", "reason"]
    assert bad.loc["ev4", "reason"].startswith("event_type: 'cardview' is not a configured type (allowed: ")
    assert "card_view" in bad.loc["ev4", "reason"]
    assert "'-3' is negative" in bad.loc["ev5", "reason"]
    assert bad.loc["ev6", "reason"].startswith("lead_id: missing")
    assert "more than 1 day after now" in bad.loc["ev7", "reason"]
    assert bad.loc["ev2", "row"] == 2 and bad.loc["ev7", "row"] == 7
    assert set(bad["source_file"]) == {str(src)}
    assert bad.loc["ev2", "ts"] == "2026-03-01 10:00:00"

    assert sorted(stored(tmp_path / "out")["event_id"]) == ["ev1", "ev8"]
    t = report.total
    assert (t.rows_in, t.accepted, t.rejected, t.duplicates) == (8, 2, 6, 0)
    assert t.rejected_by_reason_field == {"dwell_s": 1, "event_type": 1, "lead_id": 1, "ts": 3}
    assert t.unknown_event_types == {"cardview": 1}
    assert_reconciles(report)


def test_the_report_is_also_written_as_json_next_to_the_events(tmp_path, settings):
    src = write_csv(tmp_path / "e.csv", [event(1), event(2, event_type="poke"), event(3, event_type="poke")])

    report = ingest([src], tmp_path / "out", settings, now=NOW)

    on_disk = json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    assert on_disk == json.loads(json.dumps(report.to_dict()))
    assert on_disk["files"][0]["file"] == str(src)
    assert on_disk["total"]["unknown_event_types"] == {"poke": 2}
    assert any("poke" in note for note in on_disk["notes"])


def test_a_row_with_several_problems_is_rejected_for_the_first_in_contract_order(tmp_path, settings):
    src = write_csv(tmp_path / "e.csv", [event(1, lead_id="  ", ts="soon", event_type="cardview", dwell_s="x")])

    report = ingest([src], tmp_path / "out", settings, now=NOW)

    (reason,) = quarantine(tmp_path / "out")["reason"]
    assert reason == "lead_id: blank value '  ' (expected a non-empty string)"
    assert report.total.rejected_by_reason_field == {"lead_id": 1}
    assert report.total.unknown_event_types == {"cardview": 1}


# --- formats ------------------------------------------------------------------------------------


def test_json_lines_input_is_accepted_like_csv(tmp_path, settings):
    rows = [event(1, dwell_s=3), event(2, dwell_s=None, channel=None), event(3, ts="2026-03-01T10:00:00")]
    src = tmp_path / "events.ndjson"
    src.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n" + json.dumps(rows[2]) + "\n")

    report = ingest([src], tmp_path / "out", settings, now=NOW)

    events = stored(tmp_path / "out")
    assert events["event_id"].tolist() == ["ev1", "ev2"]
    assert events["dwell_s"].iloc[0] == 3.0 and pd.isna(events["dwell_s"].iloc[1])
    assert (report.total.accepted, report.total.rejected) == (2, 1)
    assert quarantine(tmp_path / "out")["row"].tolist() == [3]


def test_parquet_with_a_tz_aware_timestamp_column_is_accepted_and_stored_in_utc_microseconds(tmp_path, settings):
    df = pd.DataFrame([event(1), event(2)]).drop(columns="ts")
    df["ts"] = pd.Series(pd.to_datetime(["2026-03-01 10:00", "2026-03-01 11:00"])).dt.tz_localize("Asia/Shanghai")
    df["dwell_s"] = [1.5, None]
    df.to_parquet(tmp_path / "events.parquet")

    report = ingest([tmp_path / "events.parquet"], tmp_path / "out", settings, now=NOW)

    table = pq.read_table(tmp_path / "out" / EVENTS_FILE)
    assert table.schema.equals(EVENT_SCHEMA)
    assert table.column("ts").to_pylist() == [
        pd.Timestamp("2026-03-01T02:00:00Z").to_pydatetime(),
        pd.Timestamp("2026-03-01T03:00:00Z").to_pydatetime(),
    ]
    assert report.total.accepted == 2


def test_parquet_with_a_naive_timestamp_column_is_rejected_row_by_row(tmp_path, settings):
    df = pd.DataFrame([event(1), event(2)]).drop(columns="ts")
    df["ts"] = pd.to_datetime(["2026-03-01 10:00", "2026-03-01 11:00"])
    df.to_parquet(tmp_path / "naive.parquet")

    report = ingest([tmp_path / "naive.parquet"], tmp_path / "out", settings, now=NOW)

    bad = quarantine(tmp_path / "out")
    assert bad["row"].tolist() == [1, 2]
    assert bad["reason"][0].startswith("ts: naive timestamp '2026-03-01 10:00:00' (no time zone")
    assert (report.total.accepted, report.total.rejected) == (0, 2)
    assert stored(tmp_path / "out").empty


def test_extra_columns_are_ignored_and_reported(tmp_path, settings):
    rows = [dict(event(1), utm_source="wechat", device="ios")]

    report = ingest([write_csv(tmp_path / "e.csv", rows)], tmp_path / "out", settings, now=NOW)

    assert report.files[0].ignored_columns == ["utm_source", "device"]
    assert list(stored(tmp_path / "out").columns) == list(EVENT_COLUMNS)
    assert any("utm_source" in note for note in report.notes)


# --- duplicates and idempotence ------------------------------------------------------------------


def test_duplicates_within_a_file_and_across_files_are_dropped_and_counted(tmp_path, settings):
    first = write_csv(tmp_path / "a.csv", [event(1), event(2), event(1)])
    second = write_jsonl(tmp_path / "b.jsonl", [event(2), event(3), event(1, tenant_id="other")])

    report = ingest([first, second], tmp_path / "out", settings, now=NOW)

    events = stored(tmp_path / "out")
    assert list(zip(events["tenant_id"], events["event_id"])) == [
        ("acme", "ev1"),
        ("acme", "ev2"),
        ("acme", "ev3"),
        ("other", "ev1"),
    ]
    assert [f.duplicates for f in report.files] == [1, 1]
    assert [f.accepted for f in report.files] == [2, 2]
    assert report.total.conflicting_duplicates == 0
    assert_reconciles(report)


def test_ingesting_the_same_file_twice_adds_nothing_the_second_time(tmp_path, settings):
    src = write_csv(tmp_path / "e.csv", [event(1), event(2), event(3)])
    out = tmp_path / "out"
    ingest([src], out, settings, now=NOW)
    before = (out / EVENTS_FILE).read_bytes()

    again = ingest([src], out, settings, now=NOW)

    assert (out / EVENTS_FILE).read_bytes() == before
    assert (again.total.rows_in, again.total.accepted, again.total.duplicates) == (3, 0, 3)
    assert again.events_stored == 3
    assert_reconciles(again)


def test_a_resent_event_written_in_another_offset_is_a_plain_duplicate(tmp_path, settings):
    a = write_csv(tmp_path / "a.csv", [event(1, ts="2026-03-01T10:00:00+08:00")])
    b = write_csv(tmp_path / "b.csv", [event(1, ts="2026-03-01T02:00:00Z")])

    report = ingest([a, b], tmp_path / "out", settings, now=NOW)

    assert (report.total.duplicates, report.total.conflicting_duplicates) == (1, 0)


def test_a_conflicting_duplicate_keeps_the_first_copy_and_is_counted_as_conflicting(tmp_path, settings):
    out = tmp_path / "out"
    ingest([write_csv(tmp_path / "a.csv", [event(1, lead_id="L1")])], out, settings, now=NOW)
    later = write_csv(tmp_path / "b.csv", [event(1, lead_id="L2"), event(2), event(2, dwell_s="99")])

    report = ingest([later], out, settings, now=NOW)

    events = stored(out).set_index("event_id")
    assert events.loc["ev1", "lead_id"] == "L1"
    assert events.loc["ev2", "dwell_s"] == 12.5
    assert (report.total.duplicates, report.total.conflicting_duplicates) == (2, 2)
    assert any("different content" in note for note in report.notes)
    assert_reconciles(report)
    kept = pd.read_parquet(out / "conflicts.parquet")
    assert sorted(zip(kept["event_id"], kept["lead_id"])) == [("ev1", "L2"), ("ev2", "L1")]
    assert kept["dwell_s"].tolist().count(99.0) == 1
    assert (kept["source_file"] == str(later)).all() and kept["reason"].str.contains("first copy was kept").all()


def test_the_quarantine_keeps_earlier_runs(tmp_path, settings):
    out = tmp_path / "out"
    ingest([write_csv(tmp_path / "a.csv", [event(1, ts="bad")])], out, settings, now=NOW)
    ingest([write_csv(tmp_path / "b.csv", [event(2, ts="worse")])], out, settings, now=NOW)

    assert quarantine(out)["event_id"].tolist() == ["ev1", "ev2"]


# --- whole-file errors --------------------------------------------------------------------------


def test_a_file_missing_required_columns_names_every_missing_column(tmp_path, settings):
    rows = [{k: v for k, v in event(1).items() if k not in ("lead_id", "ts")}]
    src = write_csv(tmp_path / "thin.csv", rows)

    with pytest.raises(IngestError) as err:
        ingest([src], tmp_path / "out", settings, now=NOW)

    message = str(err.value)
    assert str(src) in message
    assert "lead_id" in message and "ts" in message.split("(")[0]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("x.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary"),
        ("gbk.csv", "event_id,lead_id\n张三,1\n".encode("gbk"), "UTF-8"),
        ("empty.csv", b"", "empty"),
        ("ragged.csv", b"event_id,tenant_id\n1,2,3\n", "cannot be read as CSV"),
        ("array.json", b'[{"event_id": "a"}, {"event_id": "b"}]', "unsupported file type '.json'"),
        ("array.jsonl", b'[{"event_id": "a"}, {"event_id": "b"}]\n', "not a JSON object"),
        ("pretty.jsonl", b'{"event_id": "a",\n "ts": "x"}\n', "line 2 is not a JSON object"),
        ("broken.jsonl", b'{"event_id": "a"\n', "cannot be read as JSON Lines"),
        ("corrupt.parquet", b"PAR1 not really", "cannot be read as Parquet"),
        ("events.xlsx", b"PK\x03\x04", "unsupported file type '.xlsx'"),
    ],
)
def test_files_that_are_not_tables_raise_one_ingest_error_naming_the_file(tmp_path, settings, name, content, expected):
    src = tmp_path / name
    src.write_bytes(content)

    with pytest.raises(IngestError) as err:
        ingest([src], tmp_path / "out", settings, now=NOW)

    assert str(src) in str(err.value)
    assert expected in str(err.value)
    assert isinstance(err.value, ValueError)


def test_an_unreadable_file_leaves_the_output_as_it_was(tmp_path, settings):
    out = tmp_path / "out"
    ingest([write_csv(tmp_path / "a.csv", [event(1)])], out, settings, now=NOW)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    good = write_csv(tmp_path / "b.csv", [event(2, ts="bad")])
    (tmp_path / "c.csv").write_bytes(b"\x00\x01")

    with pytest.raises(IngestError, match=r"c\.csv"):
        ingest([good, tmp_path / "c.csv"], out, settings, now=NOW)

    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_header_only_file_ingests_nothing_and_still_writes_an_empty_events_file(tmp_path, settings):
    src = tmp_path / "e.csv"
    src.write_text(",".join(EVENT_COLUMNS) + "\n")

    report = ingest([src], tmp_path / "out", settings, now=NOW)

    assert report.total.rows_in == 0
    assert pq.read_table(tmp_path / "out" / EVENTS_FILE).schema.equals(EVENT_SCHEMA)
    assert report.quarantine_path is None


# --- property: nothing is lost, nothing is stored twice ------------------------------------------

_row = st.builds(
    event,
    st.integers(0, 6),
    tenant_id=st.sampled_from(["acme", "beta"]),
    lead_id=st.sampled_from(["L1", "L2", "", " "]),
    ts=st.sampled_from(["2026-03-01T10:00:00+08:00", "2026-03-01T10:00:00", "nope", "2026-03-02T00:00:00Z"]),
    event_type=st.sampled_from(["card_view", "phone_call", "cardview"]),
    dwell_s=st.sampled_from(["1", "-1", None, "2.5"]),
)


@hyp_settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(_row, max_size=12), min_size=1, max_size=3))
def test_every_row_is_accepted_rejected_or_a_duplicate_and_stored_once(settings, batches):
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        out = tmp_dir / "out"
        for i, rows in enumerate(batches):
            src = write_csv(tmp_dir / f"b{i}.csv", rows) if rows else tmp_dir / f"b{i}.csv"
            if not rows:
                src.write_text(",".join(EVENT_COLUMNS) + "\n")
            report = ingest([src], out, settings, now=NOW)
            assert_reconciles(report)
            assert report.total.rows_in == len(rows)
        events = stored(out)
        assert not events.duplicated(["tenant_id", "event_id"]).any()
        assert (events["dwell_s"].dropna() >= 0).all()
