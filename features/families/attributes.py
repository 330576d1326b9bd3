"""Static CRM attributes of the lead, when a leads table is given (categorical features)."""

from __future__ import annotations

from functools import partial

import ibis.expr.types as ir

from leadradar.config import Settings
from leadradar.features.feature import Feature

WORDS = {
    "source": ("came in through {value}", "来源：{value}"),
    "industry": ("works in {value}", "行业：{value}"),
    "region": ("is in {value}", "地区：{value}"),
}


def attribute(t: ir.Table, name: str) -> ir.Value:
    return t[f"attr_{name}"]


def declare(settings: Settings) -> list[Feature]:
    feats = []
    for name in settings.features.lead_attributes:
        en, zh = WORDS.get(name, (f"{name}: {{value}}", f"{name}：{{value}}"))
        feats.append(
            Feature(
                name=f"attr_{name}",
                family="attributes",
                source="attributes",
                kind="category",
                default=None,
                expr=partial(attribute, name=name),
                en=en,
                zh=zh,
            )
        )
    return feats
