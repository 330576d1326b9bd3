"""Counts and dwell per event type and per family, over each configured window and all time."""

from __future__ import annotations

import ibis.expr.types as ir

from features.registry import Feature, window_label, window_suffix
from leadradar.settings import Settings


def in_window(t: ir.Table, types: list[str], w: int | None) -> ir.BooleanValue:
    mask = t.event_type.isin(types)
    return mask if w is None else mask & (t.age < w)


def event_groups(settings: Settings) -> list[tuple[str, list[str]]]:
    """(name, event types) for every type and every family, the family names prefixed `fam_`."""
    ev = settings.events
    return [(t, [t]) for t in ev.types] + [(f"fam_{f}", ev.of_family(f)) for f in ev.families]


def declare(settings: Settings) -> list[Feature]:
    ev = settings.events
    dwell_types = set(ev.dwell_types)
    windows: list[int | None] = [*settings.features.windows_days, None]
    feats: list[Feature] = []
    for group, types in event_groups(settings):
        label = ev.label(group.removeprefix("fam_"))
        has_dwell = any(t in dwell_types for t in types)
        for w in windows:
            wen, wzh = window_label(w)
            sfx = window_suffix(w)
            feats.append(Feature(
                name=f"n_{group}_{sfx}", family="activity", source="activity", window_days=w,
                expr=lambda t, ty=types, w=w: t.n.sum(where=in_window(t, ty, w)),
                en=f"{label.verb_en} {{value}} times {wen}", zh=f"{wzh}{label.verb_zh}{{value}}次",
            ))
            if not has_dwell:
                continue
            feats += [
                Feature(
                    name=f"dwell_sum_{group}_{sfx}", family="activity", source="activity", window_days=w,
                    kind="seconds",
                    expr=lambda t, ty=types, w=w: t.dwell_sum.sum(where=in_window(t, ty, w)),
                    en=f"spent {{value}} on {label.noun_en} {wen}", zh=f"{wzh}在{label.noun_zh}停留{{value}}",
                ),
                Feature(
                    name=f"dwell_mean_{group}_{sfx}", family="activity", source="activity", window_days=w,
                    kind="seconds", default=None,
                    expr=lambda t, ty=types, w=w: t.dwell_sum.sum(where=in_window(t, ty, w))
                    / t.dwell_n.sum(where=in_window(t, ty, w)).nullif(0),
                    en=f"stayed {{value}} per visit on {label.noun_en} {wen}",
                    zh=f"{wzh}每次在{label.noun_zh}平均停留{{value}}",
                ),
                Feature(
                    name=f"dwell_max_{group}_{sfx}", family="activity", source="activity", window_days=w,
                    kind="seconds", default=None,
                    expr=lambda t, ty=types, w=w: t.dwell_max.max(where=in_window(t, ty, w)),
                    en=f"stayed up to {{value}} on {label.noun_en} {wen}",
                    zh=f"{wzh}在{label.noun_zh}最长停留{{value}}",
                ),
            ]
    return feats
