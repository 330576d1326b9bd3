"""Counts and dwell per event type and per family, over each configured window and all time.

Every count and dwell statistic of a type or a family speaks to the event family's topic
(`events:content`), so card views and all view events, in any window, give one reason.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from leadradar.config import Settings
from leadradar.features.feature import Feature, window_label
from leadradar.features.grid import dwell_groups, event_groups
from leadradar.features.tiles.ops import Max, Ratio, Sum


def windowed(t: ir.Table, column: str, w: int | None) -> ir.Value:
    """The column where the day lies in the window (days before the cutoff < w), else null."""
    return t[column] if w is None else ibis.ifelse(t.age < w, t[column], ibis.null(t[column].type()))


def declare(settings: Settings) -> list[Feature]:
    ev = settings.events
    with_dwell = dwell_groups(settings)
    windows: list[int | None] = [*settings.features.windows_days, None]
    feats: list[Feature] = []
    for group, types in event_groups(settings):
        if group in ("any", "two_way"):
            continue
        label = ev.label(group.removeprefix("fam_"))
        topic = f"events:{ev.types[types[0]]}"  # a type's family, or the family whose types these are
        for w in windows:
            wen, wzh = window_label(w)
            feats.append(
                Feature.over(
                    f"n_{group}",
                    w,
                    family="activity",
                    source="activity",
                    topic=topic,
                    expr=lambda t, g=group, w=w: windowed(t, f"n__{g}", w).sum(),
                    tile=Sum(f"n__{group}", 0, w),
                    en=f"{label.verb_en} {{value}} times {wen}",
                    zh=f"{wzh}{label.verb_zh}{{value}}次",
                    en0=f"has not {label.verb_en} {wen}" if w else f"has never {label.verb_en}",
                    zh0=f"{wzh}未{label.verb_zh}" if w else f"从未{label.verb_zh}",
                )
            )
            if group not in with_dwell:
                continue
            feats += [
                Feature.over(
                    f"dwell_sum_{group}",
                    w,
                    family="activity",
                    source="activity",
                    topic=topic,
                    kind="seconds",
                    expr=lambda t, g=group, w=w: windowed(t, f"dsum__{g}", w).sum(),
                    tile=Sum(f"dsum__{group}", 0, w),
                    en=f"spent {{value}} on {label.noun_en} {wen}",
                    zh=f"{wzh}在{label.noun_zh}停留{{value}}",
                ),
                Feature.over(
                    f"dwell_mean_{group}",
                    w,
                    family="activity",
                    source="activity",
                    topic=topic,
                    kind="seconds",
                    default=None,
                    expr=lambda t, g=group, w=w: (
                        windowed(t, f"dsum__{g}", w).sum() / windowed(t, f"dn__{g}", w).sum().nullif(0)
                    ),
                    tile=Ratio(Sum(f"dsum__{group}", 0, w), Sum(f"dn__{group}", 0, w)),
                    en=f"stayed {{value}} per visit on {label.noun_en} {wen}",
                    zh=f"{'历来' if w is None else wzh}每次在{label.noun_zh}平均停留{{value}}",
                ),
                Feature.over(
                    f"dwell_max_{group}",
                    w,
                    family="activity",
                    source="activity",
                    topic=topic,
                    kind="seconds",
                    default=None,
                    expr=lambda t, g=group, w=w: windowed(t, f"dmax__{g}", w).max(),
                    tile=Max(f"dmax__{group}", w),
                    en=f"stayed up to {{value}} on {label.noun_en} in one visit {wen}",
                    zh=f"{'历来' if w is None else wzh}单次在{label.noun_zh}最长停留{{value}}",
                ),
            ]
    return feats
