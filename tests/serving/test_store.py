"""The score store and ranked lists: one row per (tenant, lead, as_of, model version), newest run first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadradar.serving.ranking import ranked_leads
from leadradar.serving.scoring import SCORE_COLUMNS
from leadradar.serving.store import ScoreStore

MONDAY = pd.Timestamp("2026-03-02", tz="UTC")
WEEK = pd.Timedelta(weeks=1)


def scores(
    tenant: str,
    as_of: pd.Timestamp,
    p: dict[str, float],
    version: str = "3",
    sales: dict[str, str] | None = None,
    stage: dict[str, str] | None = None,
) -> pd.DataFrame:
    """A score frame as serving/scoring.py makes it: one row per lead."""
    leads = list(p)
    frame = pd.DataFrame(
        {
            "tenant_id": tenant,
            "lead_id": leads,
            "sales_id": [(sales or {}).get(lead, "s1") for lead in leads],
            "stage": [(stage or {}).get(lead, "engaged") for lead in leads],
            "as_of": as_of,
            "p_close": [p[lead] for lead in leads],
            "model_name": "leadradar-close",
            "model_version": version,
        }
    )
    return frame[SCORE_COLUMNS]


@pytest.fixture
def store(tmp_path: Path) -> ScoreStore:
    return ScoreStore(f"sqlite:///{tmp_path / 'scores.db'}")


def _p(frame: pd.DataFrame) -> dict[str, float]:
    return dict(zip(frame["lead_id"], frame["p_close"]))


# --- the store ---------------------------------------------------------------------------


def test_writing_the_same_run_twice_replaces_rather_than_duplicates(store: ScoreStore):
    store.write(scores("ta", MONDAY, {"L1": 0.1, "L2": 0.2, "L3": 0.3}))
    written = store.write(scores("ta", MONDAY, {"L1": 0.5, "L2": 0.6}))
    assert written == 2
    latest = store.latest("ta")
    assert _p(latest) == {"L1": 0.5, "L2": 0.6}
    assert len(store.runs("ta")) == 1


def test_the_same_instant_in_another_timezone_is_the_same_run(store: ScoreStore):
    store.write(scores("ta", MONDAY, {"L1": 0.1}))
    store.write(scores("ta", MONDAY.tz_convert("Asia/Shanghai"), {"L1": 0.4}))
    assert len(store.runs("ta")) == 1
    assert _p(store.latest("ta")) == {"L1": 0.4}


def test_another_model_version_on_the_same_as_of_is_a_run_of_its_own(store: ScoreStore):
    store.write(scores("ta", MONDAY, {"L1": 0.1}, version="3"))
    store.write(scores("ta", MONDAY, {"L1": 0.2}, version="4"))
    assert {v for _, v in store.runs("ta")} == {"3", "4"}


def test_latest_is_the_newest_run_and_back_one_the_run_before(store: ScoreStore):
    store.write(scores("ta", MONDAY + WEEK, {"L1": 0.2}))
    store.write(scores("ta", MONDAY + 2 * WEEK, {"L1": 0.3}))
    store.write(scores("ta", MONDAY, {"L1": 0.1}))  # written last, but the oldest as_of
    newest, previous = store.latest("ta"), store.latest("ta", back=1)
    assert (newest["as_of"] == MONDAY + 2 * WEEK).all() and _p(newest) == {"L1": 0.3}
    assert (previous["as_of"] == MONDAY + WEEK).all() and _p(previous) == {"L1": 0.2}
    assert str(newest["as_of"].dt.tz) == "UTC"


def test_latest_of_a_tenant_without_runs_is_empty(store: ScoreStore):
    store.write(scores("ta", MONDAY, {"L1": 0.1}))
    assert store.latest("tb").empty
    assert store.latest("ta", back=1).empty


def test_a_tenant_never_sees_another_tenants_scores(store: ScoreStore):
    store.write(scores("ta", MONDAY, {"A1": 0.1, "A2": 0.2}))
    store.write(scores("tb", MONDAY + WEEK, {"B1": 0.9}))  # newer, and of another tenant
    store.write(scores("tb", MONDAY, {"B2": 0.8}))
    latest_a = store.latest("ta")
    assert set(latest_a["tenant_id"]) == {"ta"}
    assert set(latest_a["lead_id"]) == {"A1", "A2"}
    assert store.latest("ta", back=1).empty
    assert set(store.latest("tb")["lead_id"]) == {"B1"}


def test_history_of_a_lead_is_ordered_by_as_of(store: ScoreStore):
    for weeks, p in [(2, 0.3), (0, 0.1), (3, 0.4), (1, 0.2)]:
        store.write(scores("ta", MONDAY + weeks * WEEK, {"L1": p, "L2": 0.5}))
    store.write(scores("tb", MONDAY + 5 * WEEK, {"L1": 0.9}))  # same lead id, other tenant
    history = store.history("ta", "L1")
    assert list(history["as_of"]) == [MONDAY + w * WEEK for w in range(4)]
    assert list(history["p_close"]) == [0.1, 0.2, 0.3, 0.4]
    assert set(history["lead_id"]) == {"L1"}


# --- ranked lists ----------------------------------------------------------------------------


@pytest.fixture
def two_runs(store: ScoreStore) -> ScoreStore:
    store.write(scores("ta", MONDAY, {"L1": 0.10, "L2": 0.50, "L3": 0.30, "L4": 0.05}))
    store.write(
        scores(
            "ta",
            MONDAY + WEEK,
            {"L1": 0.40, "L2": 0.45, "L3": 0.30, "L5": 0.70, "L6": 0.40},
            sales={"L2": "s2", "L5": "s2"},
            stage={"L5": "proposal", "L6": "proposal"},
        )
    )
    store.write(scores("tb", MONDAY + 2 * WEEK, {"X1": 0.99}))
    return store


def test_ranked_leads_order_by_close_probability_descending(two_runs: ScoreStore):
    ranked = ranked_leads(two_runs, "ta", limit=None)
    assert list(ranked["lead_id"]) == ["L5", "L2", "L1", "L6", "L3"]  # ties broken by lead id
    assert list(ranked["rank"]) == [1, 2, 3, 4, 5]
    assert ranked["p_close"].is_monotonic_decreasing


def test_ranked_leads_change_is_against_the_previous_run(two_runs: ScoreStore):
    change = ranked_leads(two_runs, "ta", limit=None).set_index("lead_id")["change"]
    assert change["L1"] == pytest.approx(0.30)
    assert change["L2"] == pytest.approx(-0.05)
    assert change["L3"] == pytest.approx(0.0)
    assert np.isnan(change["L5"]) and np.isnan(change["L6"])  # new this week


def test_ranked_leads_of_a_single_run_have_no_change(two_runs: ScoreStore):
    ranked = ranked_leads(two_runs, "tb")
    assert list(ranked["lead_id"]) == ["X1"]
    assert ranked["change"].isna().all()


def test_ranked_leads_filter_by_salesperson_keeping_the_tenant_wide_rank(two_runs: ScoreStore):
    ranked = ranked_leads(two_runs, "ta", sales_id="s2")
    assert list(ranked["lead_id"]) == ["L5", "L2"]
    assert list(ranked["rank"]) == [1, 2]
    ranked = ranked_leads(two_runs, "ta", sales_id="s1")
    assert list(ranked["lead_id"]) == ["L1", "L6", "L3"]
    assert list(ranked["rank"]) == [3, 4, 5]


def test_ranked_leads_filter_by_stage(two_runs: ScoreStore):
    ranked = ranked_leads(two_runs, "ta", stage="proposal")
    assert list(ranked["lead_id"]) == ["L5", "L6"]
    assert ranked_leads(two_runs, "ta", stage="won").empty


def test_ranked_leads_paginate_with_limit_and_offset(two_runs: ScoreStore):
    full = list(ranked_leads(two_runs, "ta", limit=None)["lead_id"])
    pages = [list(ranked_leads(two_runs, "ta", limit=2, offset=o)["lead_id"]) for o in (0, 2, 4, 6)]
    assert pages == [full[0:2], full[2:4], full[4:5], []]


def test_ranked_leads_of_an_unknown_tenant_are_empty_with_change_and_rank_columns(two_runs: ScoreStore):
    ranked = ranked_leads(two_runs, "nobody")
    assert ranked.empty
    assert {"change", "rank", "p_close", "lead_id"} <= set(ranked.columns)


def test_ranked_leads_without_detail_are_the_same_list_minus_the_reasons(two_runs: ScoreStore):
    full = ranked_leads(two_runs, "ta", limit=None)
    bare = ranked_leads(two_runs, "ta", limit=None, detail=False)
    assert "detail" in full and "detail" not in bare
    pd.testing.assert_frame_equal(bare, full.drop(columns="detail"))


def test_the_ranked_cache_reads_again_exactly_when_the_tenants_scores_change(store: ScoreStore):
    from leadradar.serving.ranking import RankedCache

    cache = RankedCache(store, lambda p: "A" if p >= 0.5 else "D")
    store.write(scores("ta", MONDAY, {"L1": 0.1, "L2": 0.6}))
    first = cache.get("ta")
    assert list(first["lead_id"]) == ["L2", "L1"] and list(first["grade"]) == ["A", "D"]
    store.write(scores("tb", MONDAY, {"L9": 0.9}))
    assert cache.get("ta") is first  # another tenant's run changes nothing here
    store.write(scores("ta", MONDAY, {"L1": 0.7, "L2": 0.6}))  # the same run, replaced
    replaced = cache.get("ta")
    assert replaced is not first and list(replaced["lead_id"]) == ["L1", "L2"]
    store.write(scores("ta", MONDAY + WEEK, {"L1": 0.2, "L2": 0.6}))  # a new run
    newest = cache.get("ta")
    assert list(newest["lead_id"]) == ["L2", "L1"] and newest["change"].tolist() == pytest.approx([0.0, -0.5])
    assert cache.get("nobody").empty
