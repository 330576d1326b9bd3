"""Reasons that tell a manager something new: behaviour compared with the leads that closed in the model's training
data, in both languages, and never the stage (the list shows it in its own column)."""

from __future__ import annotations

from leadradar.features.registry import build_registry
from leadradar.registry import load_alias
from leadradar.serving.reasons import ReasonWriter, parse_detail


def test_a_behaviour_reason_carries_how_closed_leads_compare_from_the_training_data(settings, scored):
    profile = load_alias(settings).model.closed_profile_
    assert profile["rows"] > 0 and profile["features"]  # learnt at training time, kept in the model's metadata
    registry = build_registry(settings)
    writer = ReasonWriter(registry, settings.funnel, settings.serving.hidden_reason_families)
    shown = [(r, side) for d in scored.scores["detail"] for side, rs in parse_detail(d)["shown"].items() for r in rs]
    compared = [r for r, _ in shown if "closed" in r]
    assert compared, "no shown reason carries the closed leads' median"
    assert all(r["closed"] == profile["features"][r["feature"]]["q50"] for r in compared)
    detail = next(d for d in scored.scores["detail"] if any("closed" in r for r in parse_detail(d)["shown"]["for"]))
    en = writer.reasons(detail, "en")["for"]
    zh = writer.reasons(detail, "zh-CN")["for"]
    assert any(" — closed leads: " in r.text and r.text.endswith("on median") for r in en)
    assert any("已成交线索中位数" in r.text for r in zh)


def test_the_stage_is_never_a_shown_reason_nor_compared(settings, scored):
    registry = build_registry(settings)
    hidden = settings.serving.hidden_reason_families
    writer = ReasonWriter(registry, settings.funnel, hidden)
    for detail in scored.scores["detail"]:
        for side in writer.reasons(detail, "en").values():
            assert [r.text for r in side if registry[r.feature].family in hidden] == []
        full = parse_detail(detail)["reasons"]
        assert not [r for rs in full.values() for r in rs if registry[r["feature"]].family in hidden and "closed" in r]
