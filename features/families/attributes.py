"""Static CRM attributes of the lead, when a leads table is given (categorical features)."""

from __future__ import annotations

from leadradar.config import Settings
from leadradar.features.registry import Feature

WORDS = {
    "source": ("came in through {value}", "来源：{value}"),
    "industry": ("works in {value}", "行业：{value}"),
    "region": ("is in {value}", "地区：{value}"),
}


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
                expr=lambda t, n=name: t[f"attr_{n}"],
                en=en,
                zh=zh,
            )
        )
    return feats
