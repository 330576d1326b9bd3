"""The lead's hidden mode, estimated from the event sequence: activity decayed by how long ago it happened.

A lead drifts between browsing, buying and dormant states the log never names. A two-state filter over daily
event counts (engaged vs dormant, Poisson counts, sticky transitions) has, in log-odds, the closed form of an
exponentially decayed sum of the days' counts (the evidence) less a term that grows with the lead's age; so the
decayed counts at a few half-lives, the decayed count of active days and the short-to-long ratio (is engagement
rising or fading) give the model that posterior without fixing the filter's rates by hand.
"""

from __future__ import annotations

import math
from functools import partial

import ibis.expr.types as ir

from leadradar.config import Settings
from leadradar.features.feature import Feature
from leadradar.features.tiles.ops import Decayed


def decay(t: ir.Table, half_life_days: int) -> ir.FloatingValue:
    """Each grid day's weight: one half for every `half_life_days` days before the cutoff."""
    return (t.age.cast("float64") * (-math.log(2) / half_life_days)).exp()


def decayed_events(t: ir.Table, half_life_days: int) -> ir.FloatingValue:
    return (t.n__any.cast("float64") * decay(t, half_life_days)).sum()


def decayed_days(t: ir.Table, half_life_days: int) -> ir.FloatingValue:
    return decay(t, half_life_days).sum()


def declare(settings: Settings) -> list[Feature]:
    lives = settings.features.engagement_half_lives_days
    if not lives:
        return []
    feats = [
        Feature(
            name=f"engagement_{h}d",
            stem="engagement",
            family="engagement",
            source="activity",
            topic="engagement",
            kind="number",
            expr=partial(decayed_events, half_life_days=h),
            tile=Decayed("n__any", h),
            en=f"did {{value}} actions, weighted by recency (halving every {h} days)",
            zh=f"按时间加权（每{h}天减半）共{{value}}次动作",
            en0="has shown no activity",
            zh0="没有任何活跃",
        )
        for h in lives
    ]
    mid = lives[len(lives) // 2]
    feats.append(
        Feature(
            name=f"engaged_days_{mid}d",
            stem="engaged_days",
            family="engagement",
            source="activity",
            topic="engagement",
            kind="number",
            expr=lambda t: decayed_days(t, mid),
            tile=Decayed("days", mid),
            en=f"active on {{value}} days, weighted by recency (halving every {mid} days)",
            zh=f"活跃天数（每{mid}天减半）为{{value}}天",
        )
    )
    if len(lives) > 1:
        short, long = lives[0], lives[-1]
        feats.append(
            Feature(
                name="engagement_trend",
                family="engagement",
                source="activity",
                topic="engagement",
                kind="number",
                default=None,
                expr=lambda t: decayed_events(t, short) / decayed_events(t, long).nullif(0) * (long / short),
                en="engagement is {value}× its longer-run level",
                zh="近期活跃度是长期水平的{value}倍",
            )
        )
    return feats
