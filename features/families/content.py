"""Content interest: distinct items, repeat views, the pricing page, focus on one product line."""

from __future__ import annotations

from leadradar.config import Settings
from leadradar.features.feature import Feature, window_label


def declare(settings: Settings) -> list[Feature]:
    pricing = list(settings.features.pricing_categories)
    feats = [
        Feature.over(
            "distinct_items",
            None,
            family="content",
            source="items",
            topic="content_breadth",
            expr=lambda t: t.item_id.nunique(),
            en="looked at {value} different items",
            zh="累计浏览{value}个不同内容",
        ),
        Feature.over(
            "distinct_items",
            30,
            family="content",
            source="items",
            topic="content_breadth",
            expr=lambda t: t.item_id.nunique(where=t.age < 30),
            en="looked at {value} different items in the last 30 days",
            zh="近30天浏览{value}个不同内容",
        ),
        Feature.over(
            "repeat_item_views",
            None,
            family="content",
            source="items",
            expr=lambda t: t.n.sum() - t.item_id.nunique(),
            en="came back to the same items {value} times",
            zh="重复浏览同一内容{value}次",
        ),
        Feature(
            name="top_category_share",
            family="content",
            source="categories",
            kind="share",
            default=None,
            expr=lambda t: t.cat_dwell.max() / t.cat_dwell.sum().nullif(0),
            en="{value} of reading time on one product line",
            zh="{value}的浏览时间集中在一个产品线",
        ),
        Feature(
            name="n_categories",
            family="content",
            source="categories",
            topic="content_breadth",
            expr=lambda t: t.category.nunique(),
            en="looked at {value} product lines",
            zh="浏览了{value}个产品线",
        ),
    ]
    for w in (7, 30, None):
        span_en, span_zh = window_label(w)
        feats.append(
            Feature.over(
                "pricing_views",
                w,
                family="content",
                source="items",
                expr=lambda t, w=w: t.n.sum(where=t.category.isin(pricing) & ((t.age < w) if w else t.age >= 0)),
                en=f"viewed the pricing page {{value}} times {span_en}",
                zh=f"{span_zh}查看报价页{{value}}次",
                en0=f"has not viewed the pricing page {span_en}" if w else "has never viewed the pricing page",
                zh0=f"{span_zh}未查看报价页" if w else "从未查看报价页",
            )
        )
    return feats
