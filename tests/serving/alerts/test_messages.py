"""An alert in words, in both languages, with no personal data in the form group robots get."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from leadradar.config import Settings
from leadradar.serving.alerts.alert import Alert
from leadradar.serving.alerts.messages import mask_phones, render

LINK = "http://127.0.0.1:3000/dashboard/leads/L-42"
PHONE_RUN = re.compile(r"\d{7,}")


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return Settings.model_validate(
        {"home": tmp_path_factory.mktemp("msg"), "alerts": {"channels": {"sales_names": {"s-007": "王磊"}}}}
    )


def alert(**what) -> Alert:
    return Alert(
        tenant_id="t01",
        lead_id="L-42",
        sales_id="s-007",
        rule="hot_action",
        at=datetime(2026, 6, 1, 9, 30, tzinfo=UTC),
        p_close=0.42,
        p_before=0.18,
        grade="B",
        dedup_key="t01|L-42|hot_action|1",
        what={"event_type": "product_view", "item_category": "pricing", "dwell_s": 192, "visit": 4, **what},
        reasons=[
            {"feature": "pricing_views_7d", "value": 3, "contribution": 0.8},
            {"feature": "visits_30d", "value": 4, "contribution": 0.3},
            {"feature": "days_since_view", "value": 40, "contribution": -0.2},
        ],
    )


def test_a_pricing_page_visit_reads_in_chinese_with_time_visit_probability_and_change(settings):
    m = render(alert(), "zh-CN", LINK, settings=settings)
    assert "看了报价页 3分12秒" in m.markdown and "第 4 次来访" in m.markdown
    assert "42%（之前 18%，+24 个百分点）" in m.markdown
    assert "王磊" in m.markdown and "L-42" in m.markdown
    assert f"({LINK})" in m.markdown and m.lang == "zh-CN" and m.link == LINK


def test_the_same_alert_reads_in_english(settings):
    m = render(alert(), "en", LINK, settings=settings)
    assert "viewed the pricing page for 3 min 12 s; 4th visit" in m.text
    assert "42% (was 18%, +24 pts)" in m.text and "Hot lead" in m.title


def test_reasons_are_the_registrys_sentences_for_closing_strongest_first(settings):
    en = render(alert(), "en", LINK, settings=settings).text
    zh = render(alert(), "zh-CN", LINK, settings=settings).text
    assert en.index("viewed the pricing page 3 times") < en.index("Open the lead")
    assert "查看报价页3次" in zh
    assert "days_since_view" not in en and "pricing_views_7d" not in en


def test_an_item_with_a_catalogue_name_is_named_and_a_first_visit_reads_first(settings):
    m = render(alert(item_category="product", item_name="智能门锁 X2", visit=1), "en", LINK, settings=settings)
    assert "viewed products “智能门锁 X2” for 3 min 12 s; 1st visit" in m.text


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_no_phone_number_or_lead_name_reaches_a_group_robot_message(settings, lang):
    a = Alert(
        **{
            **alert(lead_name="张伟", phone="13812345678").__dict__,
            "lead_id": "13812345678",
        }
    )
    m = render(a, lang, "http://127.0.0.1:3000/dashboard/leads/13812345678", settings=settings)
    assert not PHONE_RUN.search(m.markdown) and "张伟" not in m.markdown and "138****5678" in m.markdown
    assert "张伟" in m.text  # the owner's own message may name the lead


def test_phone_numbers_are_masked_in_any_common_writing():
    for phone, middle in (("13812345678", "1234"), ("+86 138 1234 5678", "1234"), ("010-8888-6666", "8888")):
        assert middle not in mask_phones(f"call {phone} now")


def test_a_back_from_dormant_alert_says_how_long_the_lead_was_quiet(settings):
    a = Alert(
        **{**alert().__dict__, "rule": "back_from_dormant", "what": {"event_type": "card_view", "dormant_days": 45}}
    )
    assert "45 天来首次来访" in render(a, "zh-CN", LINK, settings=settings).markdown
    assert "first visit in 45 days" in render(a, "en", LINK, settings=settings).markdown


def test_an_items_name_and_category_come_from_the_tenants_catalogue(tmp_path):
    import pandas as pd

    from leadradar.features.store import EventStore
    from leadradar.serving.alerts.messages import item_facts

    settings = Settings(home=tmp_path / "home")
    settings.ensure_dirs()
    events = EventStore(settings.event_store_url, settings)
    try:
        items = pd.DataFrame(
            {
                "tenant_id": ["t01", "t02"],
                "item_id": ["p1", "p1"],
                "category": ["pricing", "x"],
                "name": ["报价单", "他"],
            }
        )
        events.put_catalog("items", items, "item_id")
        facts = item_facts(events, "t01", "p1")
        assert facts == {"item_category": "pricing", "item_name": "报价单"}
        assert item_facts(events, "t01", "nope") == {} and item_facts(events, "t01", None) == {}
        m = render(alert(**facts), "zh-CN", LINK, settings=settings)
        assert "看了报价页 3分12秒" in m.markdown
    finally:
        events.close()
