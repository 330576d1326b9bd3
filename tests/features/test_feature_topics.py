"""Every feature declares the topic it speaks to; the topics are the ones the old name-parsing rule gave."""

from __future__ import annotations

import re

import pytest

from leadradar.config import EventConfig, Settings
from leadradar.features.feature import Feature
from leadradar.features.registry import build_registry


def topic_by_parsing_the_name(feature: Feature, events: EventConfig) -> str:
    """The rule models/explain.py used before topics were declared, kept here once as the reference."""
    same_topic = {
        "n_two_way_contact": "events:contact",
        "hours_since_first_event": "lead_age",
        "days_since_created": "lead_age",
        "sessions": "visits",
        "active_days": "visits",
        "referred_visits": "referrals",
        "referred_leads": "referrals",
        "distinct_items": "content_breadth",
        "n_categories": "content_breadth",
        "sales_win_rate": "sales_record",
        "sales_closed_leads": "sales_record",
        "engagement": "engagement",
        "engaged_days": "engagement",
        "engagement_trend": "engagement",
    }
    stem = re.sub(r"_(?:\d+d|all)$", "", feature.name)
    m = re.match(r"^(?:n|dwell_(?:sum|mean|max))_(?P<group>.+)$", stem) if feature.family == "activity" else None
    if m:
        group = m["group"]
        family = group.removeprefix("fam_") if group.startswith("fam_") else events.types.get(group, group)
        return f"events:{family}"
    if stem.startswith("hours_since_last_"):
        return "last_touch"
    return same_topic.get(stem, f"{feature.family}:{stem}")


def company_settings() -> Settings:
    """A company with its own windows, lead attributes and event types (one with dwell, one two-way)."""
    types = {**EventConfig().types, "demo_booked": "contact", "whitepaper_read": "content"}
    return Settings(
        features={"windows_days": [1, 7, 14], "lead_attributes": ["source", "industry", "team"]},
        events={
            "types": types,
            "dwell_types": [*EventConfig().dwell_types, "whitepaper_read"],
            "two_way_contact": [*EventConfig().two_way_contact, "demo_booked"],
        },
    )


@pytest.mark.parametrize("settings", [Settings(), company_settings()], ids=["default", "company"])
def test_every_declared_topic_is_the_one_the_name_parsing_rule_gave(settings: Settings):
    registry = build_registry(settings)
    assert len(registry) > 150
    for f in registry:
        assert f.topic == topic_by_parsing_the_name(f, settings.events), f.name


def test_a_companys_own_event_type_speaks_to_its_familys_topic():
    registry = build_registry(company_settings())
    for w in ("1d", "14d", "all"):
        assert registry[f"n_demo_booked_{w}"].topic == registry[f"n_fam_contact_{w}"].topic == "events:contact"
        assert registry[f"dwell_max_whitepaper_read_{w}"].topic == "events:content"
        assert registry[f"n_whitepaper_read_{w}"].topic == registry["n_article_view_7d"].topic


def test_a_windowed_feature_is_named_from_its_stem_and_window():
    declaration = {"family": "content", "source": "items", "expr": lambda t: t.n.sum(), "en": "", "zh": ""}
    week, ever = Feature.over("item_views", 7, **declaration), Feature.over("item_views", None, **declaration)
    assert (week.name, week.window_days, ever.name, ever.window_days) == ("item_views_7d", 7, "item_views_all", None)
    assert week.topic == ever.topic == "content:item_views"


def test_a_feature_without_a_declared_topic_speaks_to_its_family_and_name():
    f = Feature(name="top_category_share", family="content", source="categories", expr=lambda t: t, en="", zh="")
    assert (f.stem, f.topic) == ("top_category_share", "content:top_category_share")


def test_a_stem_that_is_not_the_start_of_the_name_is_refused():
    with pytest.raises(ValueError, match="pricing_views"):
        Feature(name="n_visits_7d", stem="pricing_views", family="c", source="items", expr=lambda t: t, en="", zh="")
