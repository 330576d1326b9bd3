"""Live scores in the score store, on the embedded SQLite default and on PostgreSQL: appended as history,
and each lead's current score is the newest of its batch run and its live rescorings."""

from __future__ import annotations

import itertools
import json

import pandas as pd
import pytest

from leadradar.serving.ranking import ranked_leads
from leadradar.serving.store import ScoreStore
from tests.serving.test_store import MONDAY, scores

SHANGHAI = "?options=-c%20TimeZone%3DAsia%2FShanghai"
_names = itertools.count()
HOUR = pd.Timedelta(hours=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'scores.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database(f"live{next(_names)}") + SHANGHAI
    s = ScoreStore(url)
    yield s
    s.engine.dispose()


def live(tenant: str, at: pd.Timestamp, p: dict[str, float], moved_by: str = "ev", version: str = "3") -> pd.DataFrame:
    """Live scores as serving/rescoring.py writes them."""
    leads = list(p)
    return pd.DataFrame(
        {
            "tenant_id": tenant,
            "lead_id": leads,
            "scored_at": at,
            "model_name": "leadradar-close",
            "model_version": version,
            "sales_id": "s1",
            "stage": "engaged",
            "p_close": [p[lead] for lead in leads],
            "grade": ["A" if p[lead] >= 0.5 else "C" for lead in leads],
            "detail": [json.dumps({"p_close_30d": p[lead]}) for lead in leads],
            "moved_by": [f"{moved_by}-{lead}" for lead in leads],
            "moved_at": at - pd.Timedelta(minutes=5),
        }
    )


def _p(frame: pd.DataFrame) -> dict[str, float]:
    return dict(zip(frame["lead_id"], frame["p_close"].astype(float)))


def test_a_live_score_already_given_stays_as_it_was_when_the_lead_is_rescored(store):
    store.write_live(live("ta", MONDAY, {"L1": 0.1}, moved_by="first"))
    store.write_live(live("ta", MONDAY + HOUR, {"L1": 0.6}, moved_by="second"))
    history = store.live_history("ta", "L1")
    assert history["p_close"].tolist() == [0.1, 0.6]
    assert history["moved_by"].tolist() == ["first-L1", "second-L1"]
    assert history["scored_at"].tolist() == [MONDAY, MONDAY + HOUR]
    assert history["moved_at"].iloc[0] == MONDAY - pd.Timedelta(minutes=5)
    assert str(history["scored_at"].dt.tz) == "UTC"


def test_the_current_score_is_the_newest_of_the_batch_run_and_the_live_scores(store):
    store.write(scores("ta", MONDAY, {"L1": 0.1, "L2": 0.2}))
    store.write_live(live("ta", MONDAY + HOUR, {"L1": 0.7, "L3": 0.4}))
    now = store.latest("ta")
    assert _p(now) == {"L1": 0.7, "L2": 0.2, "L3": 0.4}
    assert now.set_index("lead_id").loc["L1", "as_of"] == MONDAY + HOUR
    # a batch run as of later than the live score takes over again
    store.write(scores("ta", MONDAY + 2 * HOUR, {"L1": 0.15, "L2": 0.25}))
    assert _p(store.latest("ta")) == {"L1": 0.15, "L2": 0.25}
    # a live score older than the newest batch run never shows, but stays history
    assert len(store.live_history("ta", "L1")) == 1
    assert _p(store.latest("ta", live=False)) == {"L1": 0.15, "L2": 0.25}


def test_a_live_score_is_ranked_and_its_change_is_against_the_latest_batch_run(store):
    store.write(scores("ta", MONDAY - 24 * HOUR, {"L1": 0.05, "L2": 0.1}))
    store.write(scores("ta", MONDAY, {"L1": 0.1, "L2": 0.2}))
    store.write_live(live("ta", MONDAY + HOUR, {"L1": 0.7}))
    ranked = ranked_leads(store, "ta", limit=None).set_index("lead_id")
    assert ranked["rank"].to_dict() == {"L1": 1, "L2": 2}
    assert ranked.loc["L1", "change"] == pytest.approx(0.6)  # 0.7 live against 0.1 in the latest run
    assert ranked.loc["L2", "change"] == pytest.approx(0.1)  # 0.2 against 0.1 in the run before


def test_a_live_score_of_one_tenant_never_shows_in_another(store):
    store.write(scores("tb", MONDAY, {"B1": 0.3}))
    store.write_live(live("ta", MONDAY + HOUR, {"B1": 0.9}))
    assert _p(store.latest("tb")) == {"B1": 0.3}
    assert store.score_history("tb", "B1")["source"].tolist() == ["batch"]
    assert _p(store.latest("ta")) == {"B1": 0.9}


def test_the_stamp_moves_when_a_lead_is_rescored_live(store):
    store.write(scores("ta", MONDAY, {"L1": 0.1}))
    before = store.stamp("ta")
    store.write_live(live("ta", MONDAY + HOUR, {"L1": 0.2}))
    assert store.stamp("ta") != before


def test_score_history_holds_batch_runs_and_live_scores_in_time_order_with_what_moved_them(store):
    store.write(scores("ta", MONDAY, {"L1": 0.1}))
    store.write_live(live("ta", MONDAY + HOUR, {"L1": 0.3}, moved_by="call"))
    store.write_live(live("ta", MONDAY + 2 * HOUR, {"L1": 0.55}, moved_by="meeting"))
    store.write(scores("ta", MONDAY + 3 * HOUR, {"L1": 0.5}))
    grade = lambda p: "A" if p >= 0.5 else "B"
    history = store.score_history("ta", "L1", grade=grade)
    assert history["source"].tolist() == ["batch", "live", "live", "batch"]
    assert history["p_close"].tolist() == [0.1, 0.3, 0.55, 0.5]
    assert history["grade"].tolist() == ["B", "C", "A", "A"]  # live rows keep the grade they were given
    assert history["moved_by"].tolist()[1:3] == ["call-L1", "meeting-L1"]
    assert history["as_of"].is_monotonic_increasing
    assert store.score_history("ta", "L1", limit=2)["p_close"].tolist() == [0.55, 0.5]
    assert store.score_history("ta", "nobody").empty
