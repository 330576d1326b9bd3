"""How long ago: hours since the last event of each family, since the last two-way contact, lead age."""

from __future__ import annotations

import ibis.expr.types as ir

from leadradar.config import Settings
from leadradar.features.families.activity import windowed
from leadradar.features.grid import HOUR_US
from leadradar.features.registry import Feature


def hours_since(t: ir.Table, us: ir.IntegerValue) -> ir.FloatingValue:
    return (t.cutoff_us.max() - us).cast("float64") / HOUR_US


def declare(settings: Settings) -> list[Feature]:
    ev = settings.events
    feats = []
    for name in ["any", *ev.families]:
        column = "last__any" if name == "any" else f"last__fam_{name}"
        label = ev.label(name)
        feats.append(
            Feature(
                name=f"hours_since_last_{name}",
                family="recency",
                source="activity",
                kind="hours",
                default=None,
                expr=lambda t, c=column: hours_since(t, t[c].max()),
                en=f"last {label.verb_en} {{value}} ago",
                zh=f"上次{label.verb_zh}是在{{value}}前",
            )
        )
    feats += [
        Feature(
            name="hours_since_two_way_contact",
            family="contact",
            source="activity",
            kind="hours",
            default=None,
            expr=lambda t: hours_since(t, t.last__two_way.max()),
            en="last spoke with the salesperson {value} ago",
            zh="上次与销售双向沟通是在{value}前",
        ),
        Feature(
            name="n_two_way_contact_30d",
            family="contact",
            source="activity",
            window_days=30,
            expr=lambda t: windowed(t, "n__two_way", 30).sum(),
            en="spoke with the salesperson {value} times in the last 30 days",
            zh="近30天与销售双向沟通{value}次",
            en0="has not spoken with the salesperson in the last 30 days",
            zh0="近30天未与销售双向沟通",
        ),
        Feature(
            name="hours_since_first_event",
            family="recency",
            source="activity",
            kind="hours",
            default=None,
            expr=lambda t: hours_since(t, t.us_min.min()),
            en="first touched the card {value} ago",
            zh="首次互动是在{value}前",
        ),
    ]
    return feats
