"""What a manager reads instead of codes: names from the catalogues, channel words, and reasons about behaviour.

Names come from an event store holding the simulator's catalogues (leads with `name`, items with `name` and
`name_zh`, sales.parquet), read by a `NameBook` over that store; the session's score store is the `scored` run.
"""

from __future__ import annotations

import re

import pyarrow.parquet as pq
import pytest

from leadradar.features.registry import build_registry
from leadradar.features.store import EventStore
from leadradar.serving.dashboard.pagedata import PageData
from leadradar.serving.names import NameBook
from leadradar.serving.ranking import ranked_list
from leadradar.serving.reasons import ReasonWriter, parse_detail
from leadradar.serving.store import ScoreStore
from tests.support.dashboard_support import session_activity

ITEM_CODE = re.compile(r"\bt0\d-(?:[pav]\d+-\d+|pricing)\b")


@pytest.fixture(scope="module")
def catalogued(tmp_path_factory, settings, small_sim) -> EventStore:
    """An event store with the simulation's leads, items and salespeople, as `leadradar ingest --items
    --leads --sales` keeps them."""
    store = EventStore(f"sqlite:///{tmp_path_factory.mktemp('catalogue') / 'events.db'}", settings)
    for part, path, key in (
        ("leads", small_sim.leads, "lead_id"),
        ("items", small_sim.items, "item_id"),
        ("sales", small_sim.sales, "sales_id"),
    ):
        store.put_catalog(part, pq.read_table(path).to_pandas(), key)
    yield store
    store.close()


@pytest.fixture(scope="module")
def pages(settings, small_sim, scored, catalogued) -> PageData:
    session_activity(settings, small_sim, scored)
    return PageData(ScoreStore(settings.score_store_url), settings, names=NameBook(settings, catalogued))


def sim_names(path) -> dict[str, str]:
    frame = pq.read_table(path).to_pandas()
    return dict(zip(frame.iloc[:, 1], frame["name"]))


def test_the_board_and_the_lists_show_the_names_the_leads_and_sales_tables_carry(pages, settings, small_sim):
    leads, sales = sim_names(small_sim.leads), sim_names(small_sim.sales)
    rows = pages.board("t01", "en")["rows"]
    assert rows and all(r["lead_name"] == leads[r["lead_id"]] for r in rows)
    assert all(r["sales_name"] == sales[r["sales_id"]] for r in rows)
    listed = pages.export("t01", "zh-CN")
    assert (listed["lead_name"] == listed["lead_id"].map(leads)).all()
    assert (listed["sales_name"] == listed["sales_id"].map(sales)).all()


def test_without_a_name_in_the_data_a_lead_shows_as_its_id(settings, scored, tmp_path):
    bare = EventStore(f"sqlite:///{tmp_path / 'bare.db'}", settings)
    pages = PageData(ScoreStore(settings.score_store_url), settings, names=NameBook(settings, bare))
    rows = pages.board("t01", "en")["rows"]
    assert rows and all(r["lead_name"] == "" and r["sales_name"] == "" for r in rows)
    bare.close()


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_a_timeline_names_items_from_the_catalogue_and_channels_in_words(pages, settings, scored, lang):
    lead = next(
        r["lead_id"]
        for r in pages.board("t01", lang)["rows"]
        if len(pages.store.events("t01", r["lead_id"]).dropna(subset=["item_id"]))
    )
    timeline = pages.lead("t01", lead, lang)["timeline"]
    extras = " ".join(e["extra"] for day in timeline for e in day["items"])
    channels = {e["channel"] for day in timeline for e in day["items"]} - {""}
    assert not ITEM_CODE.search(extras)
    named = re.search(r"产品线\d+ (?:产品|文章|视频)\d+|价目表", extras) if lang == "zh-CN" else None
    assert named if lang == "zh-CN" else re.search(r"Line \d+ (?:product|article|video) \d+|Price list", extras)
    words = {settings.events.channel_label(c, lang) for c in settings.events.channels}
    assert channels and channels <= words
    assert "mini_program" not in channels


def test_the_displayed_reasons_of_the_list_speak_of_behaviour_not_the_funnel(pages, settings, scored):
    registry = build_registry(settings)
    funnel = {name for name in scored.features.columns if name in registry and registry[name].family == "funnel"}
    writer = ReasonWriter(registry, settings.funnel, settings.serving.hidden_reason_families)
    result = ranked_list(ScoreStore(settings.score_store_url), "t01", settings.serving.grade, writer)
    shown = [writer.strongest(d, "en", prefer=side) for d in scored.scores["detail"] for side in ("for", "against")]
    assert len(result.table) and result.table["top_reason"].str.len().gt(0).mean() > 0.9
    assert not {r.feature for r in shown if r} & funnel
    lead = pages.lead("t01", result.table["lead_id"].iloc[0], "en")
    assert not {r.feature for side in lead["reasons"].values() for r in side} & funnel
    # The model still weighs the funnel: its full explanation (the API's) keeps those reasons.
    full = {r["feature"] for d in scored.scores["detail"] for side in parse_detail(d)["reasons"].values() for r in side}
    assert full & funnel
    assert "stage" in result.table and result.table["stage"].notna().all()


def test_stored_runs_without_shown_reasons_have_their_funnel_reasons_filtered(settings):
    writer = ReasonWriter(build_registry(settings), settings.funnel, ("funnel",))
    detail = {
        "reasons": {
            "for": [
                {"feature": "stage_changes", "value": 4, "contribution": 0.9},
                {"feature": "stage_rank", "value": 4, "contribution": 0.5},
            ],
            "against": [],
        }
    }
    assert writer.strongest(detail, "en") is None
    assert ReasonWriter(build_registry(settings), settings.funnel).top(detail, "en") == "moved stage 4 times"
    assert writer.reasons(detail, "en") == {"for": [], "against": []}
