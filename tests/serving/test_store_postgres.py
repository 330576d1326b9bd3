"""The score store on a real PostgreSQL server behaves as on the embedded SQLite default.

The harness starts a throwaway server (tests/postgres.py) once for this module; each test gets a
database of its own. The store's own tests (tests/serving/test_store.py) run again here against PostgreSQL
with the session time zone of a server in China, then batch runs are compared row for row.
"""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
from typer.testing import CliRunner

from leadradar.serving.auth import KeyStore
from leadradar.serving.store import ScoreStore
from leadradar.serving.users import UserStore

# The store's behaviour, again on PostgreSQL: these use the `store` fixture defined below.
from tests.serving.test_store import (  # noqa: F401
    MONDAY,
    WEEK,
    scores,
    test_a_tenant_never_sees_another_tenants_scores,
    test_another_model_version_on_the_same_as_of_is_a_run_of_its_own,
    test_history_of_a_lead_is_ordered_by_as_of,
    test_latest_is_the_newest_run_and_back_one_the_run_before,
    test_latest_of_a_tenant_without_runs_is_empty,
    test_ranked_leads_change_is_against_the_previous_run,
    test_ranked_leads_filter_by_salesperson_keeping_the_tenant_wide_rank,
    test_ranked_leads_order_by_close_probability_descending,
    test_the_same_instant_in_another_timezone_is_the_same_run,
    test_writing_the_same_run_twice_replaces_rather_than_duplicates,
    two_runs,
)
from tests.support.postgres import PostgresServer

SHANGHAI = "?options=-c%20TimeZone%3DAsia%2FShanghai"
_names = itertools.count()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """A fresh database on the module's server, its sessions in Beijing time."""
    return postgres.create_database(f"t{next(_names)}") + SHANGHAI


@pytest.fixture
def store(pg_url: str):
    s = ScoreStore(pg_url)
    yield s
    s.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'scores.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database(f"t{next(_names)}") + SHANGHAI
    s = ScoreStore(url)
    yield s
    s.engine.dispose()


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.sort_values(keys).reset_index(drop=True)


def test_timestamps_come_back_as_the_same_utc_instant_from_a_beijing_time_session(store):
    store.write(scores("ta", MONDAY, {"L1": 0.1}))
    back = store.latest("ta")
    assert back["as_of"].iloc[0] == MONDAY
    assert str(back["as_of"].dt.tz) == "UTC"
    assert store.runs("ta")[0][0] == MONDAY.to_pydatetime()


def test_a_batch_run_reads_back_the_same_on_postgres_as_on_the_embedded_default(
    scored, small_sim, settings, tmp_path, postgres
):
    from tests.support.dashboard_support import session_activity

    activity = session_activity(settings, small_sim, scored)
    some = set(scored.scores[scored.scores["tenant_id"] == "t01"]["lead_id"][:300])
    events = activity.events[activity.events["lead_id"].isin(some)]
    stores = {
        "sqlite": ScoreStore(f"sqlite:///{tmp_path / 'embedded.db'}"),
        "postgresql": ScoreStore(postgres.create_database("batch") + SHANGHAI),
    }
    read = {}
    for name, store in stores.items():
        for _ in range(2):  # the same run twice: replaced, never duplicated
            store.write_context(scored.features)
            store.write(scored.scores)
            store.write_events(events, activity.as_of)
            store.write_funnel(activity.funnel)
        read[name] = {
            "scores": _sorted(store.latest("t01").drop(columns="scored_at"), ["lead_id"]),
            "runs": store.runs("t01"),
            "events": _sorted(
                pd.concat([store.events("t01", lead) for lead in scored.scores["lead_id"][:50]]),
                ["lead_id", "event_id"],
            ),
            "funnel": store.funnel("t01"),
            "context": store.context("t01"),
        }
        store.engine.dispose()
    lite, pg = read["sqlite"], read["postgresql"]
    assert len(pg["runs"]) == 1 and pg["runs"] == lite["runs"]
    expected = scored.scores[scored.scores["tenant_id"] == "t01"]
    assert len(pg["scores"]) == len(expected) and not pg["scores"]["lead_id"].duplicated().any()
    pd.testing.assert_frame_equal(pg["scores"], lite["scores"])
    assert len(pg["events"]) > 0
    pd.testing.assert_frame_equal(pg["events"], lite["events"])
    pd.testing.assert_frame_equal(pg["funnel"], lite["funnel"])
    assert pg["context"] == lite["context"]


def test_lead_events_keep_the_newest_run_and_a_backfill_leaves_them(any_store):
    def events(lead: str, ids: list[str], day: str) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "tenant_id": "ta",
                "lead_id": lead,
                "event_id": ids,
                "ts": pd.Timestamp(day, tz="UTC"),
                "event_type": "card_view",
                "sales_id": "s1",
                "dwell_s": 12.5,
                "item_id": None,
                "channel": "h5",
            }
        )

    any_store.write_events(events("L1", ["e1", "e2"], "2026-03-01"), MONDAY)
    any_store.write_events(events("L1", ["e3"], "2026-03-08"), MONDAY + WEEK)  # the next run replaces
    assert list(any_store.events("ta", "L1")["event_id"]) == ["e3"]
    any_store.write_events(events("L1", ["e0"], "2026-02-20"), MONDAY - WEEK)  # a backfill does not
    assert list(any_store.events("ta", "L1")["event_id"]) == ["e3"]
    assert any_store.events("tb", "L1").empty


def test_funnel_counts_replace_per_run_and_read_in_funnel_order(any_store):
    def counts(as_of: pd.Timestamp, reached: list[int]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "tenant_id": "ta",
                "as_of": as_of,
                "stage": ["new", "engaged", "won"],
                "position": [0, 1, 2],
                "reached": reached,
                "lost": [5, 1, 0],
            }
        )

    any_store.write_funnel(counts(MONDAY, [100, 40, 10]))
    any_store.write_funnel(counts(MONDAY, [120, 50, 12]))
    any_store.write_funnel(counts(MONDAY - WEEK, [90, 30, 8]))
    newest = any_store.funnel("ta")
    assert list(newest["stage"]) == ["new", "engaged", "won"] and list(newest["reached"]) == [120, 50, 12]
    assert list(any_store.funnel("ta", MONDAY - WEEK)["reached"]) == [90, 30, 8]
    assert any_store.funnel("tb").empty


def test_keys_and_dashboard_users_live_on_postgres_too(pg_url):
    keys, users = KeyStore(pg_url), UserStore(pg_url)
    key_id, token = keys.create("ta", "manager", name="pg")
    assert keys.verify(token).tenant_id == "ta" and keys.active(key_id).role == "manager"
    users.create("ta", "boss", "a long enough password")
    assert users.verify("boss", "a long enough password").tenant_id == "ta"
    assert users.verify("boss", "wrong password!") is None
    keys.engine.dispose()
    users.engine.dispose()


def test_rerunning_leadradar_score_on_postgres_replaces_the_run(trained, scored, small_sim, settings, pg_url):
    from leadradar.cli import app

    env = {"LEADRADAR_HOME": str(settings.data_dir), "LEADRADAR_SERVING__SCORE_STORE_URL": pg_url}
    args = [
        "score",
        "--events",
        str(small_sim.events),
        "--stages",
        str(small_sim.stages),
        "--tenant",
        "t01",
        "--as-of",
        scored.as_of.isoformat(),
    ]
    counts = []
    store = ScoreStore(pg_url)
    for _ in range(2):
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
        counts.append((len(store.latest("t01")), len(store.runs("t01"))))
    expected = int((scored.scores["tenant_id"] == "t01").sum())
    assert counts == [(expected, 1), (expected, 1)]
    assert store.latest("t02").empty
    first = store.latest("t01").sort_values("p_close", ascending=False).iloc[0]
    assert first["lead_id"] == scored.scores[scored.scores["tenant_id"] == "t01"].iloc[0]["lead_id"]
    assert store.funnel("t01")["reached"].iloc[0] > 0
    assert not store.events("t01", first["lead_id"]).empty
    store.engine.dispose()
