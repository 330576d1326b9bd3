"""Momentum, sessions, active days, and when the lead looks: nights, weekends, bot-like bursts."""

from __future__ import annotations

import ibis

from leadradar.config import Settings
from leadradar.features.families.activity import windowed
from leadradar.features.feature import Feature, window_label
from leadradar.features.tiles.ops import Ratio, Sum


def declare(settings: Settings) -> list[Feature]:
    feats = [
        Feature(
            name="momentum_7d",
            stem="momentum",
            family="momentum",
            source="activity",
            kind="number",
            default=1.0,
            expr=lambda t: (
                (windowed(t, "n__any", 7).sum().fill_null(0) + 1).cast("float64")
                / (ibis.ifelse((t.age >= 7) & (t.age < 14), t.n__any, 0).sum().fill_null(0) + 1)
            ),
            tile=Ratio(Sum("n__any", 0, 7), Sum("n__any", 7, 14), add=1.0),
            en="activity in the last 7 days is {value}× the 7 days before",
            zh="近7天活跃度是前7天的{value}倍",
        ),
        Feature(
            name="events_per_session",
            family="momentum",
            source="activity",
            kind="number",
            default=None,
            expr=lambda t: t.n__any.sum().cast("float64") / t.sessions.sum().nullif(0),
            tile=Ratio(Sum("n__any"), Sum("sessions")),
            en="did {value} actions per visit",
            zh="每次访问{value}个动作",
        ),
        Feature(
            name="night_share",
            family="timing",
            source="activity",
            kind="share",
            default=None,
            expr=lambda t: t.night.sum().cast("float64") / t.n__any.sum().nullif(0),
            tile=Ratio(Sum("night"), Sum("n__any")),
            en="was active at night {value} of the time",
            zh="夜间活动占{value}",
        ),
        Feature(
            name="weekend_share",
            family="timing",
            source="activity",
            kind="share",
            default=None,
            expr=lambda t: t.weekend.sum().cast("float64") / t.n__any.sum().nullif(0),
            tile=Ratio(Sum("weekend"), Sum("n__any")),
            en="was active at weekends {value} of the time",
            zh="周末活动占{value}",
        ),
        Feature(
            name="zero_dwell_share",
            family="quality",
            source="activity",
            kind="share",
            default=None,
            expr=lambda t: t.zero_dwell.sum().cast("float64") / t.n__any.sum().nullif(0),
            tile=Ratio(Sum("zero_dwell", present="dwell_n"), Sum("n__any")),
            en="{value} of card opens lasted zero seconds (link previews, bots)",
            zh="{value}的名片打开停留0秒（可能是链接预览或机器）",
        ),
    ]
    for w in [*[w for w in settings.features.windows_days if w >= 7], None]:
        span_en, span_zh = window_label(w)
        feats += [
            Feature.over(
                "sessions",
                w,
                family="momentum",
                source="activity",
                topic="visits",
                expr=lambda t, w=w: windowed(t, "sessions", w).sum(),
                tile=Sum("sessions", 0, w),
                en=f"visited {{value}} times {span_en}",
                zh=f"{span_zh}访问{{value}}次",
                en0=f"has not visited {span_en}" if w else "has never visited",
                zh0=f"{span_zh}未访问",
            ),
            Feature.over(
                "active_days",
                w,
                family="momentum",
                source="activity",
                topic="visits",
                expr=lambda t, w=w: t.count() if w is None else ibis.ifelse(t.age < w, 1, 0).sum(),
                tile=Sum("days", 0, w),
                en=f"active on {{value}} days {span_en}",
                zh=f"{span_zh}有{{value}}天活跃",
            ),
        ]
    return feats
